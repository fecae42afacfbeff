"""How a report shows text that may hold bytes a reader must never get raw: a file name that is
not UTF-8 (surrogate escapes), and control characters (a newline, ESC, NUL) in a name or message.

Human-facing output (text, CSV, HTML, JUnit, the watch lines, fix's plan) shows such bytes as
`\\xff`; `shown` also escapes control characters, so a name can neither start a line of its own
(a fake `PASS`) nor drive the terminal (ESC sequences).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; the Unicode line and paragraph separators (a new line to some
# viewers); the bidirectional overrides and isolates, which reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_CR_LF = re.compile(
    "[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """`text` as valid Unicode: each undecodable file-name byte shown as `\\xNN`, like Python does.

    A name read from the file system with undecodable bytes holds them as lone surrogates
    (U+DC80-U+DCFF), which a strict UTF-8 stream refuses with UnicodeEncodeError. The `\\xNN`
    form is for display only: JSON output keeps the exact escapes, which round-trip to the bytes.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        # Some other lone surrogate (not from a file name): shown as its \\udXXX escape.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(text: str, *, keep_cr_lf: bool = False) -> str:
    """One field of a human line: printable, with every control character escaped as Python
    writes it (`\\n`, `\\x1b`, `\\x00`, `\\u202e`), so it stays on its line and inert.

    `keep_cr_lf`: for a format with its own escape for line breaks (GitHub's %0A).
    """
    return (_CONTROL_BUT_CR_LF if keep_cr_lf else _CONTROL).sub(_escape, printable(text))


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]
