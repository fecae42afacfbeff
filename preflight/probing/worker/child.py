"""The worker process: parses one file at a time with libmediainfo, or (kind "thumbnail") decodes
one small JPEG, or reads the stream details fix plans with, with PyAV's FFmpeg, under a memory
bound.

Run as a script by the pool in this package; it imports only the standard library and pymediainfo
or av (never preflight), applies its own limits before loading either library, answers jobs read
from stdin on stdout, and exits when stdin closes or its parent dies.
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
from fractions import Fraction
from functools import partial
from typing import Any, BinaryIO

_FRAME = struct.Struct(">I")
_NAMES = {"mediainfo": "MediaInfo", "thumbnail": "FFmpeg (PyAV)"}
MAX_JPEG_BYTES = 8192  # a thumbnail over this is encoded again, coarser
# A keyframe this dark on average (full-range luma, 0-255) is the black of a fade-in, not a
# picture; the thumbnail is the first keyframe past it within LOOK_AHEAD_S of the start.
BLACK_LUMA = 20
LOOK_AHEAD_S = 5.0
_QUALITIES = (5, 9, 15, 24, 31)  # mjpeg qscale, finest first
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
    kind = argv[2] if len(argv) > 2 else "mediainfo"
    # Limits first, before libmediainfo is mapped: everything the parser does runs under them.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    try:
        if kind == "thumbnail":
            import av  # loaded now, under the bound, so the first job is fast

            run = Thumbnailer(av).run
        else:
            from pymediainfo import MediaInfo

            lib, handle = MediaInfo._get_library()[:2]  # load it now, so the first job is fast
            lib.MediaInfo_Close(handle)
            lib.MediaInfo_Delete(handle)
            run = partial(_run, MediaInfo)
    except Exception as exc:  # every failure to start (MemoryError too) is reported, then we go
        _send(answers, _load_failure(exc, memory, kind))
        return 1
    baseline = _peak_bytes()
    _send(answers, {"ready": True})
    while True:
        job = _receive(jobs)
        if job is None:
            return 0  # the parent closed our stdin: it is done with us, or gone
        answer = run(job, jobs)
        peak = _peak_bytes()
        # A real file needs a few MiB; a hostile one grows until an allocation fails, which
        # libmediainfo swallows. Past half the headroom, the parse ran into the bound.
        if "text" in answer and peak > baseline + (memory - baseline) // 2:
            answer = {
                "kind": "resource_limit",
                "message": f"{_NAMES[kind]} used over {peak >> 20} MiB of its {memory >> 20} MiB "
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


def _load_failure(exc: BaseException, memory: int, kind: str) -> dict[str, Any]:
    library = "PyAV's FFmpeg" if kind == "thumbnail" else "libmediainfo"
    if isinstance(exc, MemoryError) or any(sign in str(exc) for sign in _ALLOCATION_FAILED):
        return {
            "kind": "resource_limit",
            "message": f"a {memory >> 20} MiB memory bound is too small to load {library}",
        }
    if kind == "thumbnail":
        return {"kind": "backend_missing", "message": f"PyAV could not be loaded ({exc})"}
    return {
        "kind": "backend_missing",
        "message": f"libmediainfo could not be loaded ({exc}): install it (Debian: apt-get "
        "install libmediainfo0v5) or use --probe ffprobe",
    }


class Thumbnailer:
    """The first keyframe of a local video as a small JPEG, decoded and encoded in-process.

    Only keyframes are decoded (skip_frame NONKEY), without the loop filter, on one thread: the
    pool runs one worker per core. The answer's "text" is the JPEG in base64.
    """

    def __init__(self, av: Any) -> None:
        self.av = av
        av.logging.set_level(None)  # FFmpeg's complaints about a broken file are not ours to print
        self._encoders: dict[tuple[int, int, int], Any] = {}
        self._sent = 0

    def run(self, job: dict[str, Any], jobs: BinaryIO) -> dict[str, Any]:
        import base64

        if job.get("op") == "streams":
            return self.streams(os.fsdecode(bytes.fromhex(job["path_hex"])), job["max_pixels"])
        try:
            jpeg = self._thumbnail(os.fsdecode(bytes.fromhex(job["path_hex"])), job["box"])
        except MemoryError:
            return {"kind": "resource_limit", "message": "the decoder ran out of its memory bound"}
        except Exception as exc:  # PyAV's errors (FFmpegError and friends), a file gone: a note
            if any(sign in str(exc) for sign in _ALLOCATION_FAILED):
                return {"kind": "resource_limit", "message": "the decoder ran out of its bound"}
            return {"kind": "unreadable", "message": f"no frame decoded ({type(exc).__name__})"}
        if jpeg is None:
            return {"kind": "unreadable", "message": "no keyframe found"}
        return {"text": base64.b64encode(jpeg).decode("ascii")}

    def streams(self, path: str, max_pixels: int) -> dict[str, Any]:
        """The streams' details fix plans with, shaped as ffprobe's -show_entries JSON
        (codec_type, codec_name, time_base, pix_fmt, width, height, start_time, disposition;
        format start_time). Finding them may decode a first frame: no decoder gets one larger
        than `max_pixels` (the size is still reported, from the stream's own header)."""
        options = {"max_pixels": str(max_pixels)}
        try:
            with open(path, "rb") as file, self.av.open(file, "r", options=options) as container:
                found = {
                    "streams": [_stream_entry(stream) for stream in container.streams],
                    "format": {"start_time": _seconds(container.start_time, 1e-6)},
                }
        except MemoryError:
            return {"kind": "resource_limit", "message": "PyAV ran out of its memory bound"}
        except Exception as exc:  # PyAV's errors, a file gone: the reason, one line
            if any(sign in str(exc) for sign in _ALLOCATION_FAILED):
                return {"kind": "resource_limit", "message": "PyAV ran out of its memory bound"}
            return {"kind": "unreadable", "message": f"PyAV could not read it ({exc})"}
        return {"text": json.dumps(found)}

    def _thumbnail(self, path: str, box: list[int]) -> bytes | None:
        # A file object, not the name: FFmpeg would read "concat:a|b" or "http:..." as a protocol,
        # and a name that is not UTF-8 reaches open() as the bytes it is.
        with open(path, "rb") as file, self.av.open(file, "r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            decoder = stream.codec_context
            decoder.skip_frame = "NONKEY"
            decoder.thread_count = 1
            decoder.options = {"skip_loop_filter": "all", "flags2": "fast"}
            first = None
            for frame in container.decode(stream):
                small = self._small(frame, stream.sample_aspect_ratio, box)
                if first is None:
                    first, start = small, frame.time
                if not _nearly_black(small):
                    return self._encode(small)
                # A fade-in: a player shows a picture a moment later. Look a few seconds on.
                if frame.time is None or start is None or frame.time - start > LOOK_AHEAD_S:
                    break
            return None if first is None else self._encode(first)
        return None

    def _small(self, frame: Any, sar: Any, box: list[int]) -> Any:
        # What a player shows (sample aspect ratio and display matrix applied), fit inside box;
        # even sides for 4:2:0. PyAV's frame.rotation is the display matrix's angle,
        # counter-clockwise (a phone held upright records -90: turn it 90 degrees clockwise).
        turns = round(-(getattr(frame, "rotation", 0) or 0) / 90) % 4
        shown_width = frame.width * float(sar) if sar else float(frame.width)
        shown_height = float(frame.height)
        if turns % 2:
            shown_width, shown_height = shown_height, shown_width
        scale = min(box[0] / shown_width, box[1] / shown_height, 1.0)
        width = max(2, round(shown_width * scale / 2) * 2)
        height = max(2, round(shown_height * scale / 2) * 2)
        if turns % 2:
            width, height = height, width  # scaled before it is turned
        small = frame.reformat(
            width=width, height=height, format="yuvj420p", interpolation="FAST_BILINEAR"
        )
        return self._turn(small, turns) if turns else small

    def _turn(self, frame: Any, turns: int) -> Any:
        # FFmpeg's own transpose filters, as ffmpeg's autorotate inserts them for a player.
        chain = {1: ["transpose=clock"], 2: ["hflip", "vflip"], 3: ["transpose=cclock"]}[turns]
        graph = self.av.filter.Graph()
        last = graph.add_buffer(
            template=None,
            width=frame.width,
            height=frame.height,
            format=frame.format.name,
            time_base=Fraction(1, 25),
        )
        for spec in chain:
            name, _, argument = spec.partition("=")
            node = graph.add(name, argument or None)
            last.link_to(node)
            last = node
        last.link_to(graph.add("buffersink"))
        graph.configure()
        frame.pts, frame.time_base = 0, Fraction(1, 25)
        graph.push(frame)
        return graph.pull()

    def _encode(self, small: Any) -> bytes:
        width, height = small.width, small.height
        jpeg = b""
        for quality in _QUALITIES:
            encoder = self._encoder(width, height, quality)
            self._sent += 1
            # A reused encoder refuses a timestamp it has seen, or one in another time base.
            small.time_base, small.pts = encoder.time_base, self._sent
            jpeg = b"".join(bytes(packet) for packet in encoder.encode(small))
            if len(jpeg) <= MAX_JPEG_BYTES:
                break
        return jpeg

    def _encoder(self, width: int, height: int, quality: int) -> Any:
        # MJPEG is intra-only: one open encoder per size serves every frame of that size.
        key = (width, height, quality)
        if key not in self._encoders:
            if len(self._encoders) >= 64:
                self._encoders.clear()  # a folder of odd shapes must not grow this without end
            from fractions import Fraction

            encoder = self.av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, 25)
            encoder.options = {"qmin": str(quality), "qmax": str(quality)}
            self._encoders[key] = encoder
        return self._encoders[key]


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video track


def _stream_entry(stream: Any) -> dict[str, Any]:
    context = stream.codec_context
    entry: dict[str, Any] = {
        "index": stream.index,
        "codec_type": stream.type,
        "codec_name": context.codec.canonical_name if context is not None else None,
        "time_base": str(stream.time_base) if stream.time_base else None,
        "start_time": _seconds(stream.start_time, stream.time_base),
        "disposition": {"attached_pic": int(bool(int(stream.disposition) & _ATTACHED_PIC))},
    }
    if stream.type == "video" and context is not None:
        entry.update(pix_fmt=context.pix_fmt, width=context.width, height=context.height)
    # For fix: the container's track ID (which stream the check judged), the profile it reports,
    # and the tag that tells a QuickTime timecode track (PyAV gives a data stream no codec
    # context, so its timecode tag stands in) from one MP4 cannot carry.
    entry["id"] = stream.id
    entry["profile"] = stream.profile if context is not None else None
    tag = context.codec_tag if context is not None else ""
    timecode = stream.type == "data" and "timecode" in stream.metadata
    entry["codec_tag_string"] = "tmcd" if timecode else tag
    return entry


def _seconds(value: int | None, unit: Any) -> str | None:
    return f"{float(value * unit):.6f}" if value is not None and unit else None


def _nearly_black(small: Any) -> bool:
    """Whether a (small, yuvj420p) frame's mean luma is under BLACK_LUMA: a fade-in's black."""
    plane = small.planes[0]
    data, stride, width, height = (
        bytes(plane),
        int(plane.line_size),
        int(small.width),
        int(small.height),
    )
    total = sum(sum(data[row * stride : row * stride + width]) for row in range(height))
    return total < BLACK_LUMA * width * height


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
