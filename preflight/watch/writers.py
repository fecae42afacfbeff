"""Which watched files a writer still has open, from inotify (IN_MODIFY … IN_CLOSE_WRITE) through
watchdog; where the platform has no such events, nothing is known and the settle time decides.
"""

# Why watchdog: of the well-kept watchers it is the one that reports IN_CLOSE_WRITE (its
# FileClosedEvent); watchfiles reports only added/modified/deleted, which cannot tell a writer
# that paused from one that finished. It watches new subfolders as they appear and needs no
# compiled code on Linux. Elsewhere (macOS, Windows, network shares) no close event exists and
# this module stands aside.

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class OpenWriters:
    """Paths written to since they were last closed by a writer: those may still be written."""

    def __init__(self) -> None:
        self._writing: set[str] = set()
        self._lock = threading.Lock()
        self._observer: Any = None

    def writing(self, path: Path) -> bool:
        with self._lock:
            return str(path) in self._writing

    def _event(self, event: Any) -> None:
        kind = event.event_type
        path = str(event.src_path)
        with self._lock:
            if kind == "events_lost":
                # The kernel's queue overflowed: a close may be lost, so nothing is known now.
                self._writing.clear()
            elif event.is_directory:
                return
            elif kind == "modified":  # IN_MODIFY: a write(); a writer has it open
                self._writing.add(path)
            elif kind in ("closed", "deleted", "created"):
                # closed by a writer (IN_CLOSE_WRITE); gone; or new, which is also how a file
                # renamed in from elsewhere arrives: its writes, if any, mark it again
                self._writing.discard(path)
            elif kind == "moved":  # renamed into place (rsync, a save-as): whole when it lands
                self._writing.discard(path)
                self._writing.discard(str(event.dest_path))

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)


def watch_writers(root: Path, *, recursive: bool) -> OpenWriters | None:
    """Start following writes under `root`; None where inotify is missing or refuses (its watch
    limit reached): the caller then relies on the settle time alone."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return None
    writers = OpenWriters()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            writers._event(event)

    observer = InotifyObserver()
    try:
        observer.schedule(Handler(), str(root), recursive=recursive)
        observer.start()
    except OSError as exc:
        log.warning("no inotify for %s (%s): judging files by the settle time alone", root, exc)
        return None
    writers._observer = observer
    return writers
