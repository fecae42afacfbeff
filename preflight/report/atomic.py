"""Atomic file replacement for the file reports (JUnit, CSV, HTML).

A reader of the report path sees the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: a reader sees the old file or the new, never half.

    The temporary file lives in the same folder (os.replace cannot cross file systems) and is
    created with mode 0666 less the umask, as a plain open() would, not mkstemp's 0600.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
