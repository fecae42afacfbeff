"""What the user named -> the list of sources to check: paths, folders (optionally recursive, with
include/exclude patterns), URLs, and lists read from a file or standard input.

Order is kept as given (a folder's files sorted by path), and each source appears once. A URL named
is read here too: its host, whether it carries credentials, and the redacted form that may be shown.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from collections import Counter
    from pathlib import Path

# Every video container a folder may hold, by name: a folder check names each one (an MKV is
# rejected for its container, with `preflight fix` as the way out) and skips only the rest.
# By extension, not by sniffing every file: a folder of exports also holds project files, audio
# and renders of many GB, and opening each of them to learn it is not video costs a read per
# file for nothing; what *is* checked is judged by its content (a WebM named .mp4 is rejected).
VIDEO_EXTENSIONS = (
    "mp4", "mov", "m4v", "qt", "3gp", "3g2", "mkv", "webm", "avi", "flv", "f4v", "wmv", "asf",
    "ts", "m2ts", "mts", "mxf", "mpg", "mpeg", "m2v", "vob", "ogv", "dv", "rm", "rmvb", "y4m",
)  # fmt: skip
DEFAULT_INCLUDE = tuple(f"*.{extension}" for extension in VIDEO_EXTENSIONS)
# Folders the watch folder and editors' tools create: never descend into them.
# scheme://userinfo@ — greedy up to the last @ before the path, as URL parsers split it.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?#]*@")
_SKIP_DIRS = {".preflight", "passed", "rejected", ".git", "__pycache__"}


def expand_sources(
    names: Sequence[str],
    *,
    recursive: bool = False,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    from_file: str | None = None,
    skipped: Counter[str] | None = None,
) -> list[str]:
    """Every source to check, in order: URLs and named files as given, folders expanded.

    `skipped`, if given, counts the files a folder walk left out, by kind (".txt", "no
    extension"), so that a summary can say what was not checked.
    """
    given = list(names)
    if from_file is not None:
        given += read_list(from_file)
    if not given:
        raise UsageError("no sources: name files, folders or URLs, or use --from FILE")
    out: list[str] = []
    seen: set[str] = set()

    def add(source: str) -> None:
        if source not in seen:
            seen.add(source)
            out.append(source)

    for name in given:
        if is_url(name) or not os.path.isdir(name):
            add(name)  # a missing or odd path is still a source: it gets an `error` result
            continue
        from pathlib import Path  # for folders only: a named file or URL needs none

        found = []
        for path in _walk(Path(name), recursive):
            if matches(path.name, include) and not matches(path.name, exclude):
                found.append(str(path))
            elif skipped is not None:
                skipped[path.suffix.lower() or "no extension"] += 1
        # A folder with nothing to check is reported (as not a video file), never silently empty.
        for source in found or [name]:
            add(source)
    return out


def is_url(source: str) -> bool:
    """Whether a source names a URL (judged by policy.url) rather than a local path."""
    return source.lower().startswith(("http://", "https://")) or "://" in source[:12]


def read_text(name: str, label: str = "") -> str:
    """The text of a file named on the command line, or of standard input for -."""
    prefix = f"{label}: " if label else ""
    try:
        if name == "-":
            return sys.stdin.read()
        with open(name, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"{prefix}no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{prefix}cannot read {name}: {exc}") from None


def read_list(from_file: str) -> list[str]:
    """One source a line; blank lines and lines starting with # are skipped; - is stdin.

    Bounded: a list over MAX_LIST_BYTES or MAX_LIST_SOURCES, or a line over MAX_LINE_BYTES, is a
    UsageError as soon as it is seen (`--from /dev/zero` ends at once, in a few KiB). A name is
    bytes: one that is not UTF-8 is kept as the file system gives it (surrogate escapes).
    """
    lines: list[str] = []
    total = 0
    pending = b""
    try:
        with open(from_file, "rb") if from_file != "-" else _stdin_bytes() as stream:
            while chunk := stream.read(_CHUNK):
                total, pending = _take(chunk, total, pending, lines, from_file)
    except FileNotFoundError:
        raise UsageError(f"--from: no such file: {from_file}") from None
    except OSError as exc:
        raise UsageError(f"--from: cannot read {from_file}: {exc.strerror or exc}") from None
    _add_line(pending, lines, from_file)
    return lines


def _stdin_bytes() -> IO[bytes]:
    if sys.stdin is None:  # started without one (a service, `<&-`)
        raise UsageError("--from -: there is no standard input to read")
    # closefd=False: the `with` must not close the process's standard input.
    return open(sys.stdin.fileno(), "rb", closefd=False)


# A path is at most 4 KiB on Linux and a presigned URL a few KiB; a million sources of 100
# bytes is 100 MB, and about that again in memory. Past these a "list" is not one (a device,
# a binary named by mistake, an endless pipe) and is refused before it can fill memory.
MAX_LINE_BYTES = 64 * 1024
MAX_LIST_BYTES = 128 * 1024 * 1024
MAX_LIST_SOURCES = 1_000_000
_CHUNK = 64 * 1024


def _take(
    chunk: bytes, total: int, pending: bytes, lines: list[str], from_file: str
) -> tuple[int, bytes]:
    total += len(chunk)
    if total > MAX_LIST_BYTES:
        raise UsageError(
            f"--from {from_file} is over {MAX_LIST_BYTES >> 20} MiB: not a list of sources"
        )
    *complete, pending = (pending + chunk).split(b"\n")
    for line in complete:
        _check_length(line, from_file)
        _add_line(line, lines, from_file)
    _check_length(pending, from_file)
    return total, pending


def _check_length(line: bytes, from_file: str) -> None:
    if len(line) > MAX_LINE_BYTES:
        raise UsageError(
            f"--from {from_file} has a line over {MAX_LINE_BYTES >> 10} KiB: not a list of sources"
        )


def _add_line(line: bytes, lines: list[str], from_file: str) -> None:
    name = os.fsdecode(line.rstrip(b"\r")).strip()
    if name and not name.startswith("#"):
        if len(lines) >= MAX_LIST_SOURCES:
            raise UsageError(
                f"--from {from_file} lists over {MAX_LIST_SOURCES:,} sources: split the list"
            )
        lines.append(name)


def _walk(folder: Path, recursive: bool) -> Iterable[Path]:
    from pathlib import Path

    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing to list (a named file inside would still error)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive and entry.name not in _SKIP_DIRS:
                yield from _walk(Path(entry.path), recursive)
            continue
        try:
            # Follows a link to its target; a link to a folder is never descended into, so a
            # link back up the tree cannot make the walk loop.
            if entry.is_file():
                yield Path(entry.path)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                # A dangling link: still a source, so it is reported (`missing`), not dropped.
                yield Path(entry.path)
        except OSError:
            # A link loop (ELOOP) or a target we may not stat: a source that gets its own
            # `error` result from the probe, while the rest of the folder is still checked.
            yield Path(entry.path)


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a file name matches any glob, ignoring case (a camera's CLIP.MOV is a .mov)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def redact_url(url: str) -> str:
    """`url` with any userinfo replaced by `***`: what may be printed, logged or stored.

    The whole userinfo goes, the user name too: a token is often sent as the user name alone.
    """
    match = _USERINFO.match(url)
    if match is None:
        return url
    return f"{match.group(1) or ''}//***@{url[match.end() :]}"


def host_of(url: str) -> str | None:
    """The host of `url`, or None when it has none or cannot be parsed (a bad port, a bad [v6])."""
    from urllib.parse import urlsplit  # here: a local check needs no URL parsing

    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return None
    return parts.hostname or None


def has_userinfo(url: str) -> bool:
    """Whether `url` carries a user name or password (scheme://userinfo@host)."""
    return _USERINFO.match(url) is not None


KLING_PREFIX = "kling:"  # kling:TASK_ID/VIDEO_ID: a Kling-generated video (`./kling:x` is a file)
# The routes that make a Kling video task, in the order the task query tries them when none is
# named (API.md, "Looking up a Kling task"); the parser offers them to --task-action and the
# stand-in serves them, so they are text here, beside the kling: name, not in the query client.
TASK_ACTIONS = (
    "text2video",
    "image2video",
    "multi-image2video",
    "multi-elements",
    "lip-sync",
    "effects",
)


def parse_kling(source: str) -> tuple[str, str]:
    """(task_id, video_id) of `kling:TASK_ID/VIDEO_ID`; UsageError if it is not that shape."""
    rest = source[len(KLING_PREFIX) :] if source.startswith(KLING_PREFIX) else ""
    task_id, _, video_id = rest.partition("/")
    if not task_id or not video_id or "/" in video_id:
        raise UsageError(f"{source!r} is not kling:TASK_ID/VIDEO_ID")
    return task_id, video_id
