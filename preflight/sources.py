"""What the user named -> the list of sources to check: paths, folders (optionally recursive, with
include/exclude patterns), URLs, and lists read from a file or standard input.

Order is kept as given (a folder's files sorted by path), and each source appears once.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_INCLUDE = ("*.mp4", "*.mov", "*.m4v")
# Folders the watch folder and editors' tools create: never descend into them.
_SKIP_DIRS = {".preflight", "passed", "rejected", ".git", "__pycache__"}


def expand_sources(
    names: Sequence[str],
    *,
    recursive: bool = False,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    from_file: str | None = None,
) -> list[str]:
    """Every source to check, in order: URLs and named files as given, folders expanded."""
    given = list(names)
    if from_file is not None:
        given += read_list(from_file)
    if not given:
        raise UsageError("no sources: name files, folders or URLs, or use --from FILE")
    out: list[str] = []
    seen: set[str] = set()

    def add(source: str) -> None:
        if source not in seen:
            seen.add(source)
            out.append(source)

    for name in given:
        if is_url(name) or not os.path.isdir(name):
            add(name)  # a missing or odd path is still a source: it gets an `error` result
            continue
        from pathlib import Path  # for folders only: a named file or URL needs none

        found = [
            str(path)
            for path in _walk(Path(name), recursive)
            if matches(path.name, include) and not matches(path.name, exclude)
        ]
        # A folder with nothing to check is reported (as not a video file), never silently empty.
        for source in found or [name]:
            add(source)
    return out


def is_url(source: str) -> bool:
    """Whether a source names a URL (judged by policy.url) rather than a local path."""
    return source.lower().startswith(("http://", "https://")) or "://" in source[:12]


def read_text(name: str, label: str = "") -> str:
    """The text of a file named on the command line, or of standard input for -."""
    prefix = f"{label}: " if label else ""
    try:
        if name == "-":
            return sys.stdin.read()
        with open(name, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"{prefix}no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{prefix}cannot read {name}: {exc}") from None


def read_list(from_file: str) -> list[str]:
    """One source a line; blank lines and lines starting with # are skipped; - is stdin."""
    text = read_text(from_file, "--from")
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _walk(folder: Path, recursive: bool) -> Iterable[Path]:
    from pathlib import Path

    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing to list (a named file inside would still error)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive and entry.name not in _SKIP_DIRS:
                yield from _walk(Path(entry.path), recursive)
            continue
        try:
            # Follows a link to its target; a link to a folder is never descended into, so a
            # link back up the tree cannot make the walk loop.
            if entry.is_file():
                yield Path(entry.path)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                # A dangling link: still a source, so it is reported (`missing`), not dropped.
                yield Path(entry.path)
        except OSError:
            # A link loop (ELOOP) or a target we may not stat: a source that gets its own
            # `error` result from the probe, while the rest of the folder is still checked.
            yield Path(entry.path)


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a file name matches any glob, ignoring case (a camera's CLIP.MOV is a .mov)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)
