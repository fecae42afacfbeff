"""watch(): a watch folder for editors' exports; each file is judged once its writer is done.

Verdicts go to DIR/.preflight/verdicts.jsonl; with `sort`, files move into DIR/passed/ or
rejected/; with `fix` too, a fixable rejected file gets a fixed copy in passed/ (fixer.py).
"""

# Why a scan and not only change notifications: it runs the same on Linux, macOS and Windows, and
# notifications are unreliable or absent on the network shares (SMB, NFS) editors export to. A
# scan is a directory listing and a stat per file, cheap at the intervals a person waits for.
# Where inotify exists (writers.py) it adds what a scan cannot see: that a writer still has the
# file open, however long it pauses. Everywhere, an export that reads as unfinished (no moov,
# truncated) is held in place, not sorted, and judged again when it changes.

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from ..pipeline import CheckOptions, check_one
from ..policy import Policy
from ..report.printable import shown
from ..sources import DEFAULT_INCLUDE
from ..verdict import Failure, Result
from .fixer import Fixer, OnEvent, WatchEvent
from .folder import (
    PASSED,
    REJECTED,
    SIDECAR_SUFFIX,
    STATE,
    VERDICTS,
    Signature,
    candidates,
    move,
    record,
    signature,
)
from .writers import OpenWriters, watch_writers

__all__ = [
    "PASSED",
    "REJECTED",
    "SIDECAR_SUFFIX",
    "STATE",
    "VERDICTS",
    "WatchEvent",
    "WatchOptions",
    "describe",
    "describe_event",
    "main_loop",
    "watch",
]

log = logging.getLogger(__name__)

# Error kinds that mean "not finished yet" as often as "broken": an export between passes has no
# moov (or one that points past the end). Such a verdict is held, never sorted.
UNFINISHED = frozenset({"no_moov", "truncated"})


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
    # follow writers with inotify where the platform has it (off: the settle time alone decides)
    notify: bool = True


OnResult = Callable[[Result, Path | None], None]


@dataclass
class _Seen:
    signature: Signature
    since: float  # time.monotonic() when this signature was first seen
    judged: Signature | None = None  # the signature last judged, so each version is judged once


@dataclass
class _Watch:
    """What one running watch holds besides its options."""

    root: Path
    policy: Policy
    check_options: CheckOptions
    options: WatchOptions
    on_result: OnResult
    on_event: OnEvent
    stop: threading.Event
    writers: OpenWriters | None
    fixer: Fixer | None


def _ignore(_event: WatchEvent) -> None:
    pass


def watch(
    folder: str | Path,
    *,
    policy: Policy,
    check_options: CheckOptions,
    options: WatchOptions,
    on_result: OnResult,
    stop: threading.Event,
    on_event: OnEvent | None = None,
) -> None:
    """Scan `folder` every interval until `stop` is set; judge each file once it has settled
    (and, where inotify tells, once no writer has it open).

    `on_result(result, moved_to)` gets every final verdict and where the file went (None when not
    sorted, or when the move failed and the file stayed where it was); `on_event` gets the rest:
    held exports, fixes started and ended. One bad file never raises. Returns after `stop`, once
    a running fix has been stopped and cleaned up.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    events = on_event or _ignore
    writers = watch_writers(root, recursive=options.recursive) if options.notify else None
    fixer = Fixer(root, policy, stop, events) if options.sort and options.fix else None
    state = _Watch(root, policy, check_options, options, on_result, events, stop, writers, fixer)
    seen: dict[Path, _Seen] = {}
    try:
        while not stop.is_set():
            _scan_once(state, seen)
            stop.wait(options.interval_s)
    finally:
        stop.set()  # also when the scan failed: the fixer must end too
        if fixer is not None:
            fixer.join()
        if writers is not None:
            writers.stop()


def _scan_once(state: _Watch, seen: dict[Path, _Seen]) -> None:
    options = state.options
    try:
        present = dict(candidates(state.root, options.include, recursive=options.recursive))
    except OSError as exc:
        # The folder itself is unreachable (a share dropped): keep what we know and try again,
        # rather than forget every file and judge them all a second time when it comes back.
        log.warning("cannot list %s: %s", state.root, exc)
        return
    for path in list(seen):
        if path not in present:
            del seen[path]  # vanished (or moved by us) before or after settling: forget it
    for path, found in present.items():
        if state.stop.is_set():
            return
        now = time.monotonic()  # per file: a long check before it must not shorten its settling
        entry = seen.get(path)
        if entry is None or entry.signature != found:
            judged = entry.judged if entry is not None else None
            seen[path] = _Seen(found, now, judged)
            continue
        if entry.judged == found or now - entry.since < options.settle_s:
            continue
        if state.writers is not None and state.writers.writing(path):
            continue  # a writer still has it open, paused: judged once it closes it
        result = _judge(path, state.policy, state.check_options)
        if signature(path) != found:
            # It changed (or vanished) while we read it: that verdict may describe half a file.
            # Drop it; the next scans see the new signature and wait for it to settle again.
            continue
        entry.judged = found
        if result.error is not None and result.error.kind in UNFINISHED:
            # Perhaps an export between passes: left where it is, with no report beside it, and
            # judged again as soon as it changes.
            record(state.root, {"event": "held", **result.to_dict(), "moved_to": None})
            state.on_event(WatchEvent("held", path, result))
            continue
        _settle(state, path, result)


def _settle(state: _Watch, path: Path, result: Result) -> None:
    """Record a final verdict; with sort, move the file; with fix, queue a fix of a reject."""
    moved_to, move_error = move(state.root, path, result) if state.options.sort else (None, None)
    entry: dict[str, Any] = {"event": "verdict", **result.to_dict()}
    entry["moved_to"] = str(moved_to) if moved_to is not None else None
    if move_error is not None:
        entry["move_error"] = move_error
    record(state.root, entry)
    state.on_result(result, moved_to)
    if state.fixer is not None and result.verdict == "reject":
        relative = path.parent.relative_to(state.root)
        state.fixer.submit(moved_to or path, state.root / PASSED / relative, result)


def _judge(path: Path, policy: Policy, check_options: CheckOptions) -> Result:
    try:
        return check_one(path, policy, options=check_options)
    except Exception as exc:  # check_one should not raise; if it does, that file is an error
        # `internal`, as batch.py says for the same bug: a preflight fault, not the file's.
        return Result(str(path), "error", error=Failure("internal", f"{type(exc).__name__}: {exc}"))


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


_FIX_LABEL = {"fixed": "FIXED", "nothing_to_fix": "OK", "unfixable": "UNFIXABLE"}


def describe_event(root: Path, event: WatchEvent) -> str:
    """One human line for a held export or a fix started or ended."""
    name = _relative(root, event.source)
    if event.kind == "held" and event.result is not None and event.result.error is not None:
        error = event.result.error
        line = f"HELD    {name}  ({error.kind}: {error.message}; judged again when it changes)"
    elif event.kind == "fixing":
        rules = ", ".join(v.rule for v in event.result.violations) if event.result else ""
        line = f"FIXING  {name}" + (f"  ({rules})" if rules else "")
    else:
        line = _describe_fix(root, name, event)
    return shown(line)


def _describe_fix(root: Path, name: str, event: WatchEvent) -> str:
    # Read defensively: the fields of FixResult.to_dict() grow (vmaf) on their own schedule.
    fix = event.fix
    status = str(fix.get("status", "error"))
    line = f"{_FIX_LABEL.get(status, 'NOT FIXED'):<7} {name}"
    if event.output is not None:
        line += f"  -> {_relative(root, event.output)}"
    details = []
    if status == "fixed":
        details.append("lossless" if fix.get("lossless") else "re-encoded")
        vmaf = fix.get("vmaf")
        if isinstance(vmaf, dict):
            vmaf = vmaf.get("mean")
        if isinstance(vmaf, (int, float)):
            details.append(f"VMAF {vmaf:.2f}")
        ssim = fix.get("ssim")
        if isinstance(ssim, (int, float)):
            details.append(f"SSIM {ssim:.4f}")
    elif fix.get("reason"):
        details.append(str(fix["reason"]))
    return line + (f"  ({', '.join(details)})" if details else "")


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
    """Watch until Ctrl-C, printing a line per verdict, held export and fix; returns 0."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    stop = threading.Event()
    failed: list[BaseException] = []
    printing = threading.Lock()  # the scanner and the fixer both print

    def say(line: str) -> None:
        with printing:
            out.write(line + "\n")
            out.flush()

    def report(result: Result, moved_to: Path | None) -> None:
        say(describe(root, result, moved_to, sort=options.sort))

    def run() -> None:
        try:
            watch(
                root,
                policy=policy,
                check_options=check_options,
                options=options,
                on_result=report,
                on_event=lambda event: say(describe_event(root, event)),
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
