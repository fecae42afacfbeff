"""The progress bar of `check` and `fix` on stderr, drawn by tqdm: counts by outcome, rate, ETA.

Shown only when stderr is a terminal, not with --quiet, and for more than one source. Results
reach the terminal through `above()`, which clears the bar, writes whole lines and draws the bar
again, so the bar never runs into a result line when both streams show on one terminal.
"""

# Why tqdm and not rich's progress: both print lines above a live bar, follow resizes and fall
# back to ASCII on a terminal that cannot encode the bar's blocks; tqdm does it with no
# dependency of its own and imports in about two-thirds of rich.progress's time (measured: 37 ms
# against 58 ms, beyond what `check` already loads). Neither is imported unless a bar is drawn,
# so a piped check and a check of one file never pay for it. The bar has no colour, so NO_COLOR
# holds for it as it is.

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

CHECK_OUTCOMES = ("pass", "reject", "error")
FIX_OUTCOMES = ("fixed", "unfixable", "error")
_REDRAW_S = 0.1  # at most ten redraws a second: a terminal is slower than the probes


def wanted(*, quiet: bool, mode: str) -> bool:
    """Whether to draw a bar: stderr is a terminal, and nothing we cannot clear prints on it.

    stdout piped into another program (`| grep`, `| tee`, `| less`, `| head`) lands on the same
    terminal, printed by that program when it likes, where clearing the bar first cannot help:
    no bar then, but for `json`, whose one document is written after the bar is gone. A file or
    a terminal on stdout keeps the bar.
    """
    import sys

    if quiet or not sys.stderr.isatty():
        return False
    if mode == "json" or sys.stdout.isatty():
        return True
    try:
        kind = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return not (stat.S_ISFIFO(kind) or stat.S_ISSOCK(kind))


class Progress:
    """One bar for a batch of `total`; `update(outcome)` counts one source as done."""

    def __init__(
        self,
        total: int,
        stream: IO[str],
        *,
        enabled: bool,
        outcomes: Sequence[str] = CHECK_OUTCOMES,
    ) -> None:
        self.total = total
        self.counts = dict.fromkeys(outcomes, 0)
        self._bar: tqdm[Any] | None = None
        self._streams: list[_AboveBar] = []
        if enabled and total > 1:
            import shutil  # here, as tqdm: a check that draws no bar loads neither

            sized = _columns(stream) > 0
            fallback = shutil.get_terminal_size()
            self._bar = _bar_type()(
                total=total,
                file=stream,
                dynamic_ncols=sized,  # a resized terminal gets a bar of its new width
                # A terminal that reports no size (an unsized pty, a serial console) would make
                # tqdm hide the bar: $COLUMNS×$LINES or 80×24, as shutil answers, instead.
                ncols=None if sized else fallback.columns - 1,
                nrows=None if sized else fallback.lines,
                leave=False,  # closing clears it: the terminal keeps only the report
                mininterval=_REDRAW_S,
                unit=" files",
                # the counts are the description: tqdm puts ", " before a postfix
                bar_format="{n_fmt}/{total_fmt} |{bar}| {desc}  {rate_fmt}  ETA {remaining}",
                desc=self._counts(),
            )

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self._bar is not None:
            self._bar.set_description_str(self._counts(), refresh=False)
            self._bar.update(1)
            if self.done == self.total:
                self._bar.refresh()  # the last count is shown, whatever the redraw interval

    def _counts(self) -> str:
        return "  ".join(f"{name} {count}" for name, count in self.counts.items())

    def above(self, stream: IO[str]) -> IO[str]:
        """`stream` as the reporters should write to it: above the bar while one is drawn."""
        if self._bar is None:
            return stream
        above = _AboveBar(stream, self._bar)
        self._streams.append(above)
        return above  # type: ignore[return-value]

    def close(self) -> None:
        """Clear the bar; what is written to `above()` streams after this goes straight out."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        for stream in self._streams:
            stream.release()


def _bar_type() -> type[tqdm[Any]]:
    """tqdm, made safe for a terminal that narrows under a drawn bar.

    A terminal that narrows rewraps the bar's line over several rows (tmux, VTE, kitty, iTerm)
    or cuts it (xterm); tqdm then clears only the cursor's row, padded to the old width, and the
    next result is written into what is left of the bar. Which of the two the terminal did cannot
    be asked, so the old bar is left where it stands, ended by a newline, and drawing starts
    afresh on the next row: at worst a stale bar line above, never one glued to a result.
    """
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[type-arg]
        _drawn_columns = 0  # the terminal's width when the bar was last drawn (0: not shown)

        def _leave_if_narrowed(self) -> None:
            columns = _columns(self.fp)
            if self._drawn_columns and 0 < columns < self._drawn_columns:
                self.fp.write("\r\n")
                self.sp = self.status_printer(self.fp)  # forget the old width's padding
                self._drawn_columns = 0

        # tqdm's close() reads display()'s answer (whether it drew); its stubs say None
        def display(  # type: ignore[override]
            self, msg: str | None = None, pos: int | None = None
        ) -> bool | None:
            self._leave_if_narrowed()
            shown: bool | None = super().display(msg, pos)
            self._drawn_columns = _columns(self.fp) if msg != "" else 0
            return shown

        def clear(self, nolock: bool = False) -> None:
            self._leave_if_narrowed()
            super().clear(nolock)
            self._drawn_columns = 0

    return Bar


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class _AboveBar:
    """A text stream that writes only whole lines, each with the bar cleared first and drawn
    again after; a part line waits for its end (or for the bar to close), so a redraw of the
    bar from tqdm's monitor thread can never land in the middle of a result."""

    def __init__(self, stream: IO[str], bar: tqdm[Any]) -> None:
        self._stream = stream
        self._bar: tqdm[Any] | None = bar
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            end = self._pending.rfind("\n") + 1 if self._bar is not None else len(self._pending)
            if end:
                whole, self._pending = self._pending[:end], self._pending[end:]
                self._write(whole)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._bar is None:
                self._stream.flush()
        # else: whole lines were flushed as written; a part line waits for its end

    def release(self) -> None:
        """The bar is gone: write out a waiting part line, then pass everything straight on."""
        with self._lock:
            self._bar = None
            if self._pending:
                self._write(self._pending)
                self._pending = ""

    def _write(self, text: str) -> None:
        bar = self._bar
        if bar is None:
            self._stream.write(text)
            self._stream.flush()
            return
        # What tqdm.write() does, for a stream that is not the bar's own: clear, write, redraw,
        # all under the lock the bar's monitor thread redraws under.
        with bar.get_lock():  # type: ignore[no-untyped-call]  # untyped in types-tqdm
            bar.clear(nolock=True)
            self._stream.write(text)
            self._stream.flush()
            bar.refresh(nolock=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)  # isatty, encoding… as the real stream answers
