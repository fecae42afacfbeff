"""The watch folder on disk: which files it holds, moving a judged file into passed/ or
rejected/ (never overwriting, never copying), and the log of what happened (verdicts.jsonl).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..sources import matches
from ..verdict import Result

log = logging.getLogger("preflight.watch")

PASSED = "passed"
REJECTED = "rejected"
STATE = ".preflight"  # our own folder: the verdict log lives here
VERDICTS = "verdicts.jsonl"
SIDECAR_SUFFIX = ".preflight.json"
OWN_FOLDERS = frozenset({PASSED, REJECTED, STATE})

_log_lock = threading.Lock()  # the scanner and the fixer both append to the log


@dataclass(frozen=True)
class Signature:
    size_bytes: int
    mtime_ns: int
    inode: int


def candidates(
    root: Path, include: tuple[str, ...], *, recursive: bool
) -> Iterator[tuple[Path, Signature]]:
    """The files to watch under `root` with their signatures; raises OSError only for `root`."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            if folder == root:
                raise
            continue  # a subfolder that vanished or that we may not read
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: .DS_Store, editors' temporary files, our .preflight/
            try:
                # Symlinks are not followed: no loops, and a move never acts on a link's target.
                if entry.is_dir(follow_symlinks=False):
                    if recursive and entry.name not in OWN_FOLDERS:
                        folders.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if not matches(entry.name, include):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone between the listing and the stat: forgotten like any vanished file
            yield Path(entry.path), Signature(st.st_size, st.st_mtime_ns, st.st_ino)


def signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Signature(st.st_size, st.st_mtime_ns, st.st_ino)


def move(root: Path, path: Path, result: Result) -> tuple[Path | None, str | None]:
    """Move `path` into passed/ or rejected/ (keeping its subfolder); never overwrite, never copy.

    Returns where it went, or None and why it stayed where it was.
    """
    relative = path.parent.relative_to(root)
    folder = root / (PASSED if result.verdict == "pass" else REJECTED) / relative
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = free_name(folder, path.name)
        # The exists() check in free_name and this rename are not one atomic step; only another
        # writer into our own passed/ or rejected/ could slip between them. os.replace renames
        # within one filesystem (EXDEV if passed/ were a different mount): it never copies, so a
        # failure leaves the file whole where it was.
        os.replace(path, target)
    except OSError as exc:
        message = f"not moved: {exc}"
        log.warning("%s: %s", path, message)
        return None, message
    if result.verdict != "pass":
        sidecar = target.with_name(target.name + SIDECAR_SUFFIX)
        try:
            sidecar.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            log.warning("%s: cannot write %s: %s", target, sidecar.name, exc)
    return target, None


def free_name(folder: Path, name: str) -> Path:
    """`name` in `folder`, or `stem (1).ext`, `stem (2).ext`… the first that does not exist."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    number = 0
    while os.path.lexists(target):
        number += 1
        target = folder / f"{stem} ({number}){suffix}"
    return target


def record(root: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line to DIR/.preflight/verdicts.jsonl, stamped with the time (UTC)."""
    line = {**entry, "checked_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    try:
        state = root / STATE
        with _log_lock:
            state.mkdir(exist_ok=True)
            with open(state / VERDICTS, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(line) + "\n")
    except OSError as exc:
        log.warning("cannot record what happened to %s: %s", entry.get("source"), exc)
