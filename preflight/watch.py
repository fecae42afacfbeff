"""watch(): a watch folder for editors' exports; each file is judged once it has stopped growing.

Verdicts go to DIR/.preflight/verdicts.jsonl; with `sort`, files move into DIR/passed/ or rejected/.
"""

# Why polling and not inotify/FSEvents/watchdog: it runs the same on Linux, macOS and Windows with
# the standard library alone (no new dependency), and change notifications are unreliable or
# absent on the network shares (SMB, NFS) that editors usually export to. A scan is a directory
# listing and a stat per file, cheap at the intervals a person waits for.

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .errors import UsageError
from .pipeline import CheckOptions, check_one
from .policy import Policy
from .report.printable import shown
from .sources import DEFAULT_INCLUDE, matches
from .verdict import Failure, Result

log = logging.getLogger(__name__)

PASSED = "passed"
REJECTED = "rejected"
STATE = ".preflight"  # our own folder: the verdict log lives here
VERDICTS = "verdicts.jsonl"
SIDECAR_SUFFIX = ".preflight.json"
_OWN_FOLDERS = frozenset({PASSED, REJECTED, STATE})


@dataclass(frozen=True)
class WatchOptions:
    interval_s: float = 1.0  # how often to scan
    # a file must keep the same size, mtime and inode this long before it is judged
    # ("stopped growing"); measured on our monotonic clock, since a share's clock may differ
    settle_s: float = 2.0
    sort: bool = False  # move judged files into DIR/passed/ or DIR/rejected/ (errors: rejected/)
    include: tuple[str, ...] = DEFAULT_INCLUDE  # case-insensitive globs on the name
    recursive: bool = False  # never descends into passed/, rejected/, .preflight/ or hidden folders
    fix: bool = False  # with sort: a rejected file that can be fixed gets a fixed copy in passed/


OnResult = Callable[[Result, Path | None], None]


@dataclass(frozen=True)
class _Signature:
    size_bytes: int
    mtime_ns: int
    inode: int


@dataclass
class _Seen:
    signature: _Signature
    since: float  # time.monotonic() when this signature was first seen
    judged: _Signature | None = None  # the signature last judged, so each version is judged once


def watch(
    folder: str | Path,
    *,
    policy: Policy,
    check_options: CheckOptions,
    options: WatchOptions,
    on_result: OnResult,
    stop: threading.Event,
) -> None:
    """Scan `folder` every interval until `stop` is set; judge each file once it has settled.

    `on_result(result, moved_to)` gets every verdict and where the file went (None when not
    sorted, or when the move failed and the file stayed where it was). One bad file never raises.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    seen: dict[Path, _Seen] = {}
    while not stop.is_set():
        _scan_once(root, seen, policy, check_options, options, on_result, stop)
        stop.wait(options.interval_s)


def _scan_once(
    root: Path,
    seen: dict[Path, _Seen],
    policy: Policy,
    check_options: CheckOptions,
    options: WatchOptions,
    on_result: OnResult,
    stop: threading.Event,
) -> None:
    try:
        present = dict(_candidates(root, options))
    except OSError as exc:
        # The folder itself is unreachable (a share dropped): keep what we know and try again,
        # rather than forget every file and judge them all a second time when it comes back.
        log.warning("cannot list %s: %s", root, exc)
        return
    for path in list(seen):
        if path not in present:
            del seen[path]  # vanished (or moved by us) before or after settling: forget it
    for path, signature in present.items():
        if stop.is_set():
            return
        now = time.monotonic()  # per file: a long check before it must not shorten its settling
        entry = seen.get(path)
        if entry is None or entry.signature != signature:
            judged = entry.judged if entry is not None else None
            seen[path] = _Seen(signature, now, judged)
            continue
        if entry.judged == signature or now - entry.since < options.settle_s:
            continue
        result = _judge(path, policy, check_options)
        after = _signature(path)
        if after != signature:
            # It changed (or vanished) while we read it: that verdict may describe half a file.
            # Drop it; the next scans see the new signature and wait for it to settle again.
            continue
        entry.judged = signature
        fix_policy = policy if options.fix else None
        moved_to, move_error = (
            _sort(root, path, result, fix_policy, stop) if options.sort else (None, None)
        )
        _record(root, result, moved_to, move_error)
        on_result(result, moved_to)


def _candidates(root: Path, options: WatchOptions) -> Iterator[tuple[Path, _Signature]]:
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
                    if options.recursive and entry.name not in _OWN_FOLDERS:
                        folders.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if not matches(entry.name, options.include):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone between the listing and the stat: forgotten like any vanished file
            yield Path(entry.path), _Signature(st.st_size, st.st_mtime_ns, st.st_ino)


def _signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _Signature(st.st_size, st.st_mtime_ns, st.st_ino)


def _judge(path: Path, policy: Policy, check_options: CheckOptions) -> Result:
    try:
        return check_one(path, policy, options=check_options)
    except Exception as exc:  # check_one should not raise; if it does, that file is an error
        # `internal`, as batch.py says for the same bug: a preflight fault, not the file's.
        return Result(str(path), "error", error=Failure("internal", f"{type(exc).__name__}: {exc}"))


def _sort(
    root: Path,
    path: Path,
    result: Result,
    fix_policy: Policy | None = None,
    stop: threading.Event | None = None,
) -> tuple[Path | None, str | None]:
    """Move `path` into passed/ or rejected/ (keeping its subfolder); never overwrite, never copy.
    With `fix_policy`, a rejected file is first fixed into passed/ (when it can be).

    Returns where it went, or None and why it stayed where it was.
    """
    relative = path.parent.relative_to(root)
    if fix_policy is not None and result.verdict == "reject":
        _fix_into(root / PASSED / relative, path, fix_policy, stop)
    folder = root / (PASSED if result.verdict == "pass" else REJECTED) / relative
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = _free_name(folder, path.name)
        # The exists() check in _free_name and this rename are not one atomic step; only another
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


def _fix_into(
    folder: Path, path: Path, policy: Policy, stop: threading.Event | None
) -> Path | None:
    """NAME.fixed.mp4 in `folder` when fix can make `path` pass; the fix writes nothing else.
    Stopping the watch kills a running ffmpeg (the fix then removes its temp files)."""
    from .fixing import fix

    try:
        folder.mkdir(parents=True, exist_ok=True)
        outcome = fix(path, _free_name(folder, f"{path.stem}.fixed.mp4"), policy, cancel=stop)
    except Exception as exc:  # a fix that fails costs the fixed copy, never the sort
        log.warning("%s: not fixed: %s", path, exc)
        return None
    if outcome.status != "fixed" or outcome.output is None:
        log.info("%s: not fixed: %s", path, outcome.reason or outcome.status)
        return None
    return Path(outcome.output)


def _free_name(folder: Path, name: str) -> Path:
    """`name` in `folder`, or `stem (1).ext`, `stem (2).ext`… the first that does not exist."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    number = 0
    while os.path.lexists(target):
        number += 1
        target = folder / f"{stem} ({number}){suffix}"
    return target


def _record(root: Path, result: Result, moved_to: Path | None, move_error: str | None) -> None:
    """Append one JSON line per verdict to DIR/.preflight/verdicts.jsonl."""
    record: dict[str, Any] = {
        **result.to_dict(),
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "moved_to": str(moved_to) if moved_to is not None else None,
    }
    if move_error is not None:
        record["move_error"] = move_error
    try:
        state = root / STATE
        state.mkdir(exist_ok=True)
        with open(state / VERDICTS, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
    except OSError as exc:
        log.warning("cannot record the verdict of %s: %s", result.source, exc)


def describe(root: Path, result: Result, moved_to: Path | None, *, sort: bool) -> str:
    """One human line: `PASS    name  -> passed/name`, with the rules or the error that decided."""
    line = f"{result.verdict.upper():<7} {_relative(root, Path(result.source))}"
    if moved_to is not None:
        line += f"  -> {_relative(root, moved_to)}"
    elif sort:
        line += "  (not moved: see .preflight/verdicts.jsonl)"
    if result.error is not None:
        line += f"  ({result.error.kind}: {result.error.message})"
    elif result.violations:
        line += f"  ({', '.join(v.rule for v in result.violations)})"
    return shown(line)  # not UTF-8, a newline or ESC in a name: escaped, on this one line


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def main_loop(
    folder: str | Path,
    *,
    policy: Policy,
    check_options: CheckOptions,
    options: WatchOptions,
    out: IO[str],
) -> int:
    """Watch until Ctrl-C, printing a line per judged file; returns the exit code (0)."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    stop = threading.Event()
    failed: list[BaseException] = []

    def report(result: Result, moved_to: Path | None) -> None:
        out.write(describe(root, result, moved_to, sort=options.sort) + "\n")
        out.flush()

    def run() -> None:
        try:
            watch(
                root,
                policy=policy,
                check_options=check_options,
                options=options,
                on_result=report,
                stop=stop,
            )
        except BaseException as exc:
            failed.append(exc)

    # The watch runs in a worker so that Ctrl-C (delivered to the main thread) only sets `stop`:
    # it can never land in the middle of a move or of a line being appended to the log.
    worker = threading.Thread(target=run, name="preflight-watch", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        worker.join()
    if failed:
        raise failed[0]
    return 0
