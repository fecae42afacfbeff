"""The MediaInfo worker process: parses one file at a time with libmediainfo, under a memory bound.

Run as a script by the pool in this package; it imports only the standard library and pymediainfo
(never preflight), applies its own limits before loading libmediainfo, answers jobs read from
stdin on stdout, and exits when stdin closes or its parent dies.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

_FRAME = struct.Struct(">I")
# Address-space signs that libmediainfo hit the bound: it catches its own failed allocations
# and answers with a partial reading, so the worker tells the parent from its own peak instead.
_ALLOCATION_FAILED = ("Cannot allocate memory", "failed to map segment", "out of memory")


class SparseFile(io.RawIOBase):
    """A read-only file of `size` bytes: the given chunks, zeros elsewhere, EOF at `readable_end`.

    This is how a remote file reaches the worker: the parent fetched the index boxes, the media
    payloads read as zeros, and the worker never touches the network.
    """

    def __init__(self, size: int, readable_end: int, chunks: list[tuple[int, bytes]]) -> None:
        super().__init__()
        self.size = size
        self.readable_end = min(readable_end, size)
        self.chunks = sorted(chunks)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self.readable_end if size is None or size < 0 else self._pos + size
        end = min(end, self.readable_end)
        if self._pos >= end:
            return b""
        out = bytearray(end - self._pos)
        for offset, data in self.chunks:
            lo, hi = max(offset, self._pos), min(offset + len(data), end)
            if lo < hi:
                out[lo - self._pos : hi - self._pos] = data[lo - offset : hi - offset]
        self._pos = end
        return bytes(out)


def main(argv: list[str]) -> int:
    memory = int(argv[1])
    # Limits first, before libmediainfo is mapped: everything the parser does runs under them.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    try:
        from pymediainfo import MediaInfo

        lib, handle = MediaInfo._get_library()[:2]  # load it now, so the first job is fast
        lib.MediaInfo_Close(handle)
        lib.MediaInfo_Delete(handle)
    except Exception as exc:  # every failure to start (MemoryError too) is reported, then we go
        _send(answers, _load_failure(exc, memory))
        return 1
    baseline = _peak_bytes()
    _send(answers, {"ready": True})
    while True:
        job = _receive(jobs)
        if job is None:
            return 0  # the parent closed our stdin: it is done with us, or gone
        answer = _run(MediaInfo, job, jobs)
        peak = _peak_bytes()
        # A real file needs a few MiB; a hostile one grows until an allocation fails, which
        # libmediainfo swallows. Past half the headroom, the parse ran into the bound.
        if "text" in answer and peak > baseline + (memory - baseline) // 2:
            answer = {
                "kind": "resource_limit",
                "message": f"MediaInfo used over {peak >> 20} MiB of its {memory >> 20} MiB "
                "bound reading it (a hostile or broken index)",
            }
        # A worker that came near its bound is not reused: its peak would blame the next file.
        answer["exit"] = "text" not in answer
        _send(answers, answer)
        if answer["exit"]:
            return 0


def _run(media_info: Any, job: dict[str, Any], jobs: BinaryIO) -> dict[str, Any]:
    source: Any = job.get("path")
    if source is None:
        payload = _receive_bytes(jobs)
        if payload is None:
            return {"kind": "unreadable", "message": "the job's bytes did not arrive"}
        chunks, at = [], 0
        for offset, length in job["chunks"]:
            chunks.append((offset, payload[at : at + length]))
            at += length
        source = SparseFile(job["size"], job["readable_end"], chunks)
    try:
        text = media_info.parse(source, parse_speed=job["parse_speed"], output=job["template"])
    except MemoryError:
        return {"kind": "resource_limit", "message": "MediaInfo ran out of its memory bound"}
    except (OSError, RuntimeError, ValueError) as exc:
        if any(sign in str(exc) for sign in _ALLOCATION_FAILED):
            return {"kind": "resource_limit", "message": "MediaInfo ran out of its memory bound"}
        return {"kind": "unreadable", "message": f"MediaInfo could not read the file: {exc}"}
    return {"text": str(text)}


def _load_failure(exc: BaseException, memory: int) -> dict[str, Any]:
    if isinstance(exc, MemoryError) or any(sign in str(exc) for sign in _ALLOCATION_FAILED):
        return {
            "kind": "resource_limit",
            "message": f"a {memory >> 20} MiB memory bound is too small to load libmediainfo",
        }
    return {
        "kind": "backend_missing",
        "message": f"libmediainfo could not be loaded ({exc}): install it (Debian: apt-get "
        "install libmediainfo0v5) or use --probe ffprobe",
    }


def _peak_bytes() -> int:
    """The most address space this process ever held (VmPeak), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return 0


def _exit_when_orphaned(parent: int) -> None:
    # stdin EOF ends an idle worker; this ends one stuck in a parse when the parent was killed.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    out.write(_FRAME.pack(len(data)) + data)
    out.flush()


def _receive_bytes(jobs: BinaryIO) -> bytes | None:
    header = jobs.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (length,) = _FRAME.unpack(header)
    data = jobs.read(length)
    return data if len(data) == length else None


def _receive(jobs: BinaryIO) -> dict[str, Any] | None:
    data = _receive_bytes(jobs)
    if data is None:
        return None
    job: dict[str, Any] = json.loads(data)
    return job


if __name__ == "__main__":
    sys.exit(main(sys.argv))
