"""Probing: turn a file, a stream or a URL into Facts.

The box reader (boxes.py with bmff.py, sampletable.py, fragments.py) decides timing, structure and
truncation for MP4/MOV, and with the default `auto` probe everything (the codec's name comes from
the sample description's four-cc); timing.py turns its Layout into Facts. The backends
(mediainfo.py, ffprobe.py), each bounded in a child process (worker/, limits.py), name codecs and
formats and read what is not MP4/MOV; compare.py lists where they disagree. local.py runs a probe
of a file or stream; remote.py fetches a URL's index through ranged.py and transport.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .names import BACKENDS, DEFAULT_BACKEND, answered_by

if TYPE_CHECKING:
    from .local import ProbeResult, probe, probe_stream

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "ProbeResult", "answered_by", "probe", "probe_stream"]


def __getattr__(name: str) -> Any:
    # The box reader loads when a probe runs, not when a submodule (names, options, limits) is
    # imported: the parser and a cached check need none of it.
    if name in ("ProbeResult", "probe", "probe_stream"):
        from . import local

        return getattr(local, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
