"""The files fix touches: its source, opened once, and where it writes: a private 0700 directory
inside the destination folder, created and owned by us, and the one rename that puts the output
in place.

The folder may be shared (0777, not sticky) with people we must not trust: they can rename,
delete or replace anything in it, but nothing inside our 0700 directory. So every name we hand
ffmpeg or open ourselves goes through the directory's descriptor (/proc/PID/fd/N/NAME, which
our children may use too), never through the folder's path that someone else can swap; the final
rename works on descriptors, so a link put where the output goes is replaced, never followed, and
the mode is set with fchmod on our own descriptor. The directory is flock()ed while we work: one
left by a killed run is unlocked, and the next run in that folder sweeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat

_SUFFIX = ".tmp-"
# What the sweep may remove: `.<output name>.tmp-<8 letters>` only, and only ours, 0700, unlocked.
_OURS = re.compile(r"^\..+\.tmp-[a-z0-9]{8}$")
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KEEP = ".keep"  # the file that keeps our directory from being removed while it is empty

# A new file's mode under this process's umask (read once: os.umask can only be read by setting).
_UMASK = os.umask(0)
os.umask(_UMASK)


class OpenedSource:
    """The source, opened once after the check: every later read (stream details, ffmpeg, SSIM)
    goes through this descriptor as /proc/PID/fd/N, so the file named is the file read even if
    the name is swapped meanwhile, and a name that is not UTF-8 never reaches ffmpeg-python."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise OSError(f"{name} is not a regular file")
        via_fd = f"/proc/{os.getpid()}/fd/{self.fd}"
        self.path = via_fd if os.path.exists(via_fd) else os.path.abspath(name)

    def __enter__(self) -> OpenedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Workspace:
    """One fix's private directory beside `target`; `close()` removes it and all it holds."""

    def __init__(self, target: str) -> None:
        self.target_name = os.path.basename(target)
        folder = os.path.dirname(os.path.abspath(target))
        self.folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_fd = -1
        try:
            sweep(self.folder_fd)
            self.name, self.dir_fd = _make_private(self.folder_fd, self.target_name)
        except BaseException:
            self.close()
            raise
        via_fd = f"/proc/{os.getpid()}/fd/{self.dir_fd}"
        # Without /proc (not Linux), the folder's path: still our 0700 directory, but a swap of
        # the directory's own name could then redirect us.
        self.base = via_fd if os.path.isdir(via_fd) else os.path.join(folder, self.name)

    def path(self, name: str) -> str:
        """A path to `name` inside the directory that no one else can redirect."""
        return f"{self.base}/{name}"

    def publish(self, name: str, *, force: bool) -> None:
        """Put the file `name` in place as the target: 0666 under the umask, set on our own
        descriptor; a file that appeared at the target meanwhile is kept unless `force`."""
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise OSError(f"{name} in our temp folder is not the file we wrote")
            os.fchmod(fd, 0o666 & ~_UMASK)
        finally:
            os.close(fd)
        where = {"src_dir_fd": self.dir_fd, "dst_dir_fd": self.folder_fd}
        if force:
            os.replace(name, self.target_name, **where)  # a link at the target is replaced
            return
        # No clobbering, even of a file that appeared while we worked: link fails if it exists.
        try:
            os.link(name, self.target_name, **where, follow_symlinks=False)
        except FileExistsError:
            message = f"{self.target_name} appeared while fixing (pass --force to replace it)"
            raise OSError(message) from None
        except OSError:
            if _exists(self.target_name, self.folder_fd):
                raise
            os.replace(name, self.target_name, **where)  # a filesystem without hard links
            return
        os.unlink(name, dir_fd=self.dir_fd)

    def close(self) -> None:
        if self.dir_fd >= 0:
            _remove(self.folder_fd, self.name, self.dir_fd)
            self.dir_fd = -1
        if self.folder_fd >= 0:
            os.close(self.folder_fd)
            self.folder_fd = -1


def sweep(folder_fd: int) -> list[str]:
    """Remove the temp directories killed runs left in this folder: ours, 0700, named as we name
    them and locked by no running fix. Returns their names."""
    swept = []
    for entry in os.listdir(folder_fd):
        if not _OURS.match(entry):
            continue
        try:
            fd = os.open(entry, _DIRECTORY, dir_fd=folder_fd)
        except OSError:
            continue  # a link, a file, gone: not ours to touch
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o700:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a run is using it
        except OSError:
            os.close(fd)
            continue
        _remove(folder_fd, entry, fd)
        swept.append(entry)
    return swept


def _make_private(folder_fd: int, target_name: str) -> tuple[str, int]:
    """mkdir a fresh name 0700 (mkdir never follows a link), open what is there now, check it is
    the directory we made, and put a file in it at once: until then anyone may rmdir it (the
    folder is theirs to write) and put a link or a directory of theirs under the name. Once it
    holds a file, no one else can remove, rename or write into it. A lost race tries a new name.
    """
    for _ in range(100):
        name = f".{target_name}{_SUFFIX}{_token()}"
        try:
            os.mkdir(name, 0o700, dir_fd=folder_fd)
        except FileExistsError:
            continue
        try:
            fd = os.open(name, _DIRECTORY, dir_fd=folder_fd)
        except OSError:
            continue  # removed and replaced by a link or a file already: not ours any more
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                raise PermissionError("someone else's directory under our name")
            os.fchmod(fd, 0o700)  # whatever the umask left: the sweep knows ours by it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # ENOENT when it was removed while empty: the descriptor is then of nothing.
            os.close(os.open(_KEEP, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600, dir_fd=fd))
        except OSError:
            os.close(fd)
            continue
        return name, fd
    raise OSError("could not make a temp folder there: another user keeps taking the names")


def _token() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _remove(folder_fd: int, name: str, fd: int) -> None:
    """Empty our directory through its descriptor, then remove its name if the name is still it."""
    try:
        for entry in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)  # never follows a link; a directory is left
        info = os.fstat(fd)
        with contextlib.suppress(OSError):
            there = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
                os.rmdir(name, dir_fd=folder_fd)
    finally:
        os.close(fd)


def _exists(name: str, folder_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
