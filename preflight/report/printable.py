"""How a report shows text that may hold a file name that is not UTF-8 (surrogate escapes).

Human-facing output (text, CSV, HTML, JUnit, the watch lines) shows such bytes as `\\xff`.
"""

from __future__ import annotations


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
