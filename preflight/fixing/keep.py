"""What a fix keeps of the source beyond the judged picture: which streams go into the MP4 and
which are dropped (with the reason the result gives), and which encoder and bit depth a re-encode
uses. Pure: the stream list comes from measure.read_streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# Text subtitles the MP4 muxer can carry once converted to mov_text (tx3g); bitmap subtitles
# (DVD, PGS) have no MP4 form a player reads, so they are dropped and the result says so.
TEXT_SUBTITLES = frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})
# What a 10-bit source that is not HEVC becomes: HEVC Main 10 (hardware decoders play it; few
# play H.264 High 10), or with "h264" 8-bit H.264, a note saying the depth was reduced.
TEN_BIT_MODES = ("hevc", "h264")


@dataclass(frozen=True)
class Stream:
    """One stream of the source as ffmpeg numbers it (for what is kept and what is dropped)."""

    index: int
    kind: str  # video, audio, subtitle, data, attachment
    codec: str = ""  # ffmpeg's codec name ("" when it has none, e.g. an Apple metadata track)
    tag: str = ""  # the codec tag (tmcd for a QuickTime timecode track)
    attached_pic: bool = False


@dataclass(frozen=True)
class Dropped:
    """A stream of the source the output does not carry, and why."""

    index: int
    kind: str
    codec: str
    why: str

    def to_dict(self) -> dict[str, object]:
        return {"stream": self.index, "kind": self.kind, "codec": self.codec, "why": self.why}


@dataclass(frozen=True)
class StreamInfo:
    """What the plan needs beyond Facts, read by ffprobe (measure.read_streams)."""

    time_base: Fraction | None = None  # of the judged video stream
    pix_fmt: str = ""
    audio_codec: str = ""  # "" when there is no audio stream
    video_start_s: float = 0.0  # the video's first frame, in seconds after the container's start
    video_codec: str = ""  # ffmpeg's name for the judged stream's codec
    profile: str = ""
    width: int | None = None
    height: int | None = None
    video_index: int | None = None  # the judged stream's index, as ffmpeg numbers the streams
    audio_index: int | None = None  # the first audio stream's index (the one fix keeps)
    streams: tuple[Stream, ...] = ()  # every stream, for what is kept and what is dropped

    @property
    def ten_bit(self) -> bool:
        return self.bit_depth > 8

    @property
    def bit_depth(self) -> int:
        return 12 if "12" in self.pix_fmt else 10 if "10" in self.pix_fmt else 8

    @property
    def alpha(self) -> bool:
        """The picture has an alpha plane (ProRes 4444, PNG, VP9 with alpha read as yuva)."""
        fmt = self.pix_fmt
        return fmt.startswith(("yuva", "gbra", "ya")) or fmt in {"argb", "rgba", "abgr", "bgra"}


# Transparent areas of an alpha picture become this grey (not black, where black text vanishes).
ALPHA_BACKGROUND_NAME = "mid grey"


def encoder(codec: str, streams: StreamInfo, ten_bit: str) -> tuple[str, str, str]:
    """(encoder, pixel format, a note when the depth or family changes) for a re-encode."""
    if not streams.ten_bit:
        return ("libx265" if codec == "hevc" else "libx264"), "yuv420p", ""
    if codec == "hevc":
        return "libx265", "yuv420p10le", ""
    if ten_bit == "h264":
        return (
            "libx264",
            "yuv420p",
            f"{streams.bit_depth}-bit {codec or 'video'} is re-encoded as 8-bit H.264 "
            "(--ten-bit h264): the extra depth is lost",
        )
    return (
        "libx265",
        "yuv420p10le",
        f"{streams.bit_depth}-bit {codec or 'video'} is re-encoded as HEVC Main 10: many hardware "
        "decoders cannot play H.264 High 10 (--ten-bit h264 gives 8-bit H.264 instead)",
    )


def text_subtitles(streams: StreamInfo) -> tuple[int, ...]:
    return tuple(
        s.index for s in streams.streams if s.kind == "subtitle" and s.codec in TEXT_SUBTITLES
    )


def dropped(streams: StreamInfo) -> tuple[Dropped, ...]:
    """Every stream the output will not carry: fix keeps the judged video, the first audio, text
    subtitles, the timecode (rewritten from its tag) and the metadata."""
    dropped = []
    for s in streams.streams:
        why = ""
        if s.kind == "video" and s.index != streams.video_index and not s.attached_pic:
            why = "another video track: the output keeps only the one the check judged"
        elif s.kind == "video" and s.attached_pic:
            why = "cover art: the API takes one video track"
        elif s.kind == "audio" and s.index != streams.audio_index:
            why = "another audio track: the output keeps the first"
        elif s.kind == "subtitle" and s.codec not in TEXT_SUBTITLES:
            why = "bitmap subtitles: MP4 carries text subtitles only"
        elif s.kind == "data" and s.tag != "tmcd":
            why = "a data track MP4 cannot carry (the timecode, if any, is kept)"
        elif s.kind == "attachment":
            why = "an attachment (font, image): MP4 has no place for it"
        if why:
            dropped.append(Dropped(s.index, s.kind, s.codec or s.tag or "unknown", why))
    return tuple(dropped)
