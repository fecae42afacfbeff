"""Writing a file report (JUnit, CSV, HTML) to the path the user named, whatever it is.

A regular file (or a missing path) is replaced atomically: a reader sees the old file or the new
one, never a half-written one. A symlink is followed to its target first. A device, FIFO or
socket, standard output (`-`, /dev/stdout, /dev/fd/N) is written straight through, never
replaced: `--junit /dev/null` must leave /dev/null a device.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import sys
from pathlib import Path

# Names of an already-open descriptor: opening them anew would truncate a redirected stdout
# (`> out.txt`) behind the text already written to it, so the descriptor itself is written.
_FD_ALIASES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/dev/fd/(\d+)|/proc/(self|thread-self|\d+)/fd/(\d+)")
_MAX_LINKS = 40  # as the kernel's own limit on a chain of symlinks (ELOOP beyond)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` by the rule for what `path` is (see the module docstring).

    Raises OSError for what cannot be written (a folder: EISDIR; a full device: ENOSPC); the CLI
    turns that into one line and exit 2.
    """
    if str(path) == "-":
        _write_descriptor(1, data)
        return
    target, descriptor = _resolve(path)
    if descriptor is not None:
        _write_descriptor(descriptor, data)
        return
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None  # a new file (or a dangling link's target): created atomically
    if info is None or stat.S_ISREG(info.st_mode):
        _replace(target, data, info)
    elif stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    else:
        # A device, FIFO or socket: write into it. Open O_WRONLY|O_TRUNC like any `>`, which a
        # device or FIFO ignores; opening a FIFO waits for its reader, as a shell would.
        with open(target, "wb") as out:
            out.write(data)


def _resolve(path: Path) -> tuple[Path, int | None]:
    """The path a symlink chain ends at, or the descriptor if the chain names an open one."""
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        descriptor = _descriptor_of(current)
        if descriptor is not None:
            return Path(current), descriptor
        try:
            link = os.readlink(current)
        except OSError:
            return Path(current), None  # not a link (or missing): the end of the chain
        # Relative to the link's own folder, with that folder's symlinks resolved, so that
        # `..` in the link means what the kernel would take it to mean.
        current = os.path.join(os.path.realpath(os.path.dirname(current)), link)
        current = os.path.normpath(current)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))


def _descriptor_of(path: str) -> int | None:
    if path in _FD_ALIASES:
        return _FD_ALIASES[path]
    match = _FD_PATH.fullmatch(path)
    if match is None:
        return None
    fd_number, process, proc_fd_number = match.groups()
    if fd_number is not None:
        return int(fd_number)
    if process in ("self", "thread-self", str(os.getpid())):
        return int(proc_fd_number)
    return None  # another process's descriptor: opened like any other path


def _write_descriptor(descriptor: int, data: bytes) -> None:
    # What the text reporter already wrote to stdout must come first.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: no matter
            stream.flush()
    with os.fdopen(os.dup(descriptor), "wb") as out:
        out.write(data)


def _replace(path: Path, data: bytes, info: os.stat_result | None) -> None:
    """Replace (or create) the regular file `path` in one step.

    The temporary file lives in the same folder (os.replace cannot cross file systems). A new
    file gets mode 0666 less the umask, as a plain open() would, not mkstemp's 0600; a replaced
    one keeps its mode (and, when we may, its owner).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            if info is not None:
                os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode))
                # Only root may give a file away; otherwise it becomes ours, as with any editor.
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), info.st_uid, info.st_gid)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
