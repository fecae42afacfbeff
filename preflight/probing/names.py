"""Our names: the probe backends, and containers and codecs mapped from what MediaInfo, ffprobe
and the boxes say.

One vocabulary in the output whatever the backend: ffprobe-style codec names, short format names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..facts import BackendName, Facts, ReaderName

# auto: the box reader alone for MP4/MOV, MediaInfo for anything else; the others always run
# the named backend(s) beside the box reader.
BACKENDS: tuple[BackendName, ...] = ("auto", "mediainfo", "ffprobe", "both")
DEFAULT_BACKEND: BackendName = "auto"
BOX_READER: ReaderName = "boxes"  # what probe.backend says when the box reader alone read it


def answered_by(backend: BackendName, facts: Facts) -> ReaderName:
    """What read a file probed with `backend`, from its facts (for results from the cache too).

    Only facts from the box reader have `samples_complete` set; under `auto` that is exactly
    when MediaInfo was not run.
    """
    if backend != "auto":
        return backend
    return BOX_READER if facts.samples_complete is not None else "mediainfo"


_MEDIAINFO_CODECS = {
    "avc": "h264",
    "hevc": "hevc",
    "av1": "av1",
    "prores": "prores",
    "vp8": "vp8",
    "vp9": "vp9",
    "h.263": "h263",
    "mpeg-4 visual": "mpeg4",
    "vvc": "vvc",
    "jpeg": "mjpeg",
    "png": "png",
    "mpeg video": "mpeg2video",
    "vc-3": "dnxhd",
    "ffv1": "ffv1",
    "theora": "theora",
}
_FOURCC_CODECS = {
    "avc1": "h264",
    "avc3": "h264",
    "hvc1": "hevc",
    "hev1": "hevc",
    "dvh1": "hevc",
    "dvhe": "hevc",
    "av01": "av1",
    "vvc1": "vvc",
    "vvi1": "vvc",
    "s263": "h263",
    "h263": "h263",
    "mp4v": "mpeg4",
    "vp08": "vp8",
    "vp09": "vp9",
    "jpeg": "mjpeg",
    "mjpa": "mjpeg",
    "png": "png",
    "apcn": "prores",
    "apch": "prores",
    "apcs": "prores",
    "apco": "prores",
    "ap4h": "prores",
    "ap4x": "prores",
    "AVdn": "dnxhd",
    "AVdh": "dnxhd",
}
_MEDIAINFO_FORMATS = {
    "mpeg-4": "mp4",
    "quicktime": "mov",
    "webm": "webm",
    "matroska": "matroska",
    "flash video": "flv",
    "mxf": "mxf",
    "mpeg-ts": "mpegts",
    "mpeg-ps": "mpeg-ps",
    "avi": "avi",
    "ogg": "ogg",
    "mpeg audio": "mp3",
    "adts": "aac",
    "wave": "wav",
    "flac": "flac",
    "bdav": "mpegts",
    "dv": "dv",
    "gif": "gif",
    "png": "png",
    "jpeg": "jpeg",
    "webp": "webp",
}
_FFPROBE_FORMATS = {
    "matroska,webm": "webm",
    "flv": "flv",
    "mxf": "mxf",
    "mpegts": "mpegts",
    "mpeg": "mpeg-ps",
    "avi": "avi",
    "ogg": "ogg",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "flac": "flac",
    "dv": "dv",
    "gif": "gif",
    "image2": "image",
    "png_pipe": "png",
    "jpeg_pipe": "jpeg",
}
# Brands that are still MP4 but of a narrower family a server may treat differently.
BRAND_FAMILIES = {"3gp": "3GP", "3g2": "3GP2", "M4V": "M4V"}


def codec_from_mediainfo(fmt: str) -> str:
    return _MEDIAINFO_CODECS.get(fmt.lower(), fmt.lower().replace(" ", ""))


def codec_from_fourcc(fourcc: str) -> str:
    return _FOURCC_CODECS.get(fourcc, fourcc)


def container_from_mediainfo(fmt: str) -> str:
    lowered = fmt.lower()
    if lowered.startswith("iso") or lowered in ("mpeg-4", "quicktime"):
        return "mp4" if lowered != "quicktime" else "mov"
    return _MEDIAINFO_FORMATS.get(lowered, lowered)


def container_from_ffprobe(format_name: str) -> str:
    if format_name.startswith("mov,mp4"):
        return "mp4"
    if format_name == "matroska,webm":
        return "webm"
    return _FFPROBE_FORMATS.get(format_name, format_name.split(",")[0])


def brand_family(brand: str) -> str:
    """'3GP', '3GP2' or 'M4V' for brands of those families, else ''."""
    for prefix, family in BRAND_FAMILIES.items():
        if brand.startswith(prefix):
            return family
    return ""


def sniff_container(head: bytes) -> str:
    """Name a non-MP4 container from its first bytes, or '' when nothing is recognised."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "matroska"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "mxf"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpegts"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if head.startswith(b"OggS"):
        return "ogg"
    return ""
