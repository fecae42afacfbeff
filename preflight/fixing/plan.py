"""The fix plan: from the facts and rule ids of a check Result to the least destructive steps.

Pure (no I/O): the steps and the Plan ffmpeg carries out are assembled here from the numbers
targets.py picks; graph.py only turns a Plan into argv.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from . import keep, targets
from .deps import Facts, Policy
from .keep import StreamInfo
from .steps import Step as Step
from .steps import reencoded as reencoded

# What the MP4 muxer of the pinned FFmpeg 9 writes without -strict (names as ffprobe gives them).
MP4_VIDEO = frozenset({"h264", "hevc", "av1", "mpeg4", "vp9", "h263", "vvc"})
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"})
EXTEND_MODES = ("freeze", "loop", "slow")
# Warnings a server may read differently from us: a passing file carrying one is fixed too.
SERVER_SENSITIVE = frozenset({"fps.variable", "fps.average_differs", "container.moov_at_end"})
FIXABLE_FAMILIES = frozenset({"container", "duration", "resolution", "fps"})
# A rate change this small (NTSC 1000/1001) leaves the audio untouched: it drifts at most a
# thousandth of the duration, 10.5 ms over the longest allowed clip, under one frame.
AUDIO_DRIFT_OK = 0.0011
# A video that starts this much after the container (an edit list, -itsoffset: audio first) is
# sought to its first frame; a smaller gap (AAC priming, a B-frame delay) is left alone.
LATE_VIDEO_S = 0.05


@dataclass(frozen=True)
class SmartCut:
    """A cut that copies the first packets and re-encodes only the frames from the join to the
    end (cuts.plan_cut). Timestamps are in the source's video ticks."""

    copy_frames: int  # the first packets (decode order) copied: they present whole frames
    frames: int  # frames re-encoded after them
    join_pts: int  # the first re-encoded frame's pts
    end_pts: int  # where the last re-encoded frame ends
    frame_ticks: int  # one frame's duration
    dts_shift: int  # subtracted from the re-encoded frames' pts to give their dts
    timescale: int  # ticks per second of the source's video track (0: not 1/n)
    time_base: Fraction = Fraction(0)  # of those ticks
    profile: str = "high"  # libx264's name for the source's profile, which the join keeps


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    unfixable: str = ""  # why no transform can meet the policy ("" when it can)
    reencode: bool = False  # the video is decoded and encoded again
    encoder: str = "libx264"
    codec: str = ""  # the source's video codec
    profile: str = ""  # and its profile, as FFmpeg names it (High, Main, Constrained Baseline)
    pix_fmt: str = "yuv420p"
    speed: Fraction = Fraction(1)  # output time = input time / speed (1001/1000: NTSC -> 30)
    source_rate: Fraction | None = None  # the nominal input rate (for SSIM and re-timing)
    target_rate: Fraction | None = None  # the output rate a re-encode ends on (fps filter)
    cut_s: float | None = None  # output duration after a cut
    # A copy cut keeps the first this many video packets in decode order (cuts.plan_cut).
    cut_frames: int | None = None
    smart_cut: SmartCut | None = None
    extend_to_s: float | None = None
    extend_mode: str = "freeze"
    loop_s: float = 0.0  # the video's own duration (input clock): one lap of --extend loop
    frame: tuple[int, int] | None = None  # the source's coded size
    size: tuple[int, int] | None = None  # scale to this many coded pixels
    padded: tuple[int, int] | None = None  # then pad to this frame
    audio: str = "none"  # none, copy, aac
    atempo: Fraction | None = None  # audio speed factor when the audio is re-timed
    # Lossless re-timing on a frame grid: (ticks per second, ticks per source frame). The video is
    # first copied into a track counting these ticks, then every timestamp is snapped to its
    # frame and scaled by 1/speed, which stays an integer. None: timestamps are scaled in place.
    grid: tuple[int, int] | None = None
    # Seconds to seek into the input (both streams) so it starts at the video's first frame.
    seek_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The judged video track as ffmpeg selects it: `i:ID` (its container track ID) or `V:0`.
    video_map: str = "V:0"
    subtitles: tuple[int, ...] = ()  # stream indexes of text subtitles carried as mov_text
    flatten_alpha: bool = False  # composite an alpha picture over ALPHA_BACKGROUND
    square_pixels: bool = True  # the source's pixels are square: the output's stay exactly so
    dropped: tuple[keep.Dropped, ...] = ()  # streams the output does not carry, with the reason

    @property
    def lossless(self) -> bool:
        return all(step.lossless for step in self.steps)

    @property
    def reencodes_video(self) -> bool:
        """Some of the output's video frames are encoded here (a re-encode or a smart cut)."""
        return self.reencode or self.smart_cut is not None

    @property
    def converts_rate(self) -> bool:
        return any(step.action == "convert_fps" for step in self.steps)

    def expected_duration(self, duration: float) -> float:
        """Seconds the output of this plan should last, from an input lasting `duration`."""
        if self.cut_s is not None:
            return self.cut_s
        if self.extend_to_s is not None:
            return self.extend_to_s
        return duration / float(self.speed)

    def with_commands(self, command: str) -> Plan:
        return replace(self, steps=tuple(replace(s, command=command) for s in self.steps))

    def remux_first(self, why: str) -> Plan:
        """Only the remux (and the audio MP4 needs encoded) this round; the rest is planned from
        the remuxed file's own facts. For a Matroska/WebM whose millisecond timestamps are not on
        one frame grid (a variable rate the reader could not see before the remux)."""
        steps = [s for s in self.steps if s.action in {"remux", "transcode_audio"}]
        audio = self.audio
        if audio == "aac" and not any(s.action == "transcode_audio" for s in steps):
            audio = "copy"  # it was AAC only to follow a re-time
        keeping = {
            "video_map": self.video_map,
            "subtitles": self.subtitles,
            "square_pixels": self.square_pixels,
            "dropped": self.dropped,
        }
        return _finish(
            steps, [why], False, self.encoder, self.pix_fmt, audio=audio, keeping=keeping
        )


def video_map(facts: Facts) -> str:
    """The ffmpeg stream specifier of the track the check judged (not the first video stream)."""
    return f"i:{facts.video_track_id}" if facts.video_track_id else "V:0"


def needs_fix(rules: set[str], warnings: set[str]) -> bool:
    return bool(rules) or bool(warnings & SERVER_SENSITIVE)


def make_plan(
    facts: Facts,
    rules: set[str],
    warnings: set[str],
    policy: Policy,
    streams: StreamInfo,
    *,
    extend: str | None = None,
    exact_cut: bool = False,
    ten_bit: str = "hevc",
    decoders: frozenset[str] | None = None,
    encoders: frozenset[str] | None = None,
) -> Plan:
    """One step per problem, lossless where the file allows; `unfixable` says why not.

    `decoders`/`encoders`: the codecs the ffmpeg that will run can decode, the encoders it has
    (None: not checked), so that a
    plan (and a --dry-run) never promises a re-encode that ffmpeg cannot carry out.
    """
    if facts.width is None or facts.height is None or facts.video_tracks == 0:
        return Plan(unfixable="no video track: the file holds only audio, data or cover art")
    other = sorted(r for r in rules if r.split(".", 1)[0] not in FIXABLE_FAMILIES)
    if other:
        return Plan(unfixable=f"no transform answers {', '.join(other)}")
    if "mp4" not in policy.containers:
        return Plan(unfixable="the policy allows no MP4 container, the only one fix writes")
    if not policy.fps_allowed:
        return Plan(unfixable="the policy allows no frame rate")
    if facts.duration is None or facts.duration <= 0:
        return Plan(unfixable="the video track has no duration")
    steps: list[Step] = []
    notes: list[str] = []
    reencode = False
    codec = streams.video_codec or facts.video_codec or ""
    encoder, pix_fmt, depth_note = keep.encoder(codec, streams, ten_bit)
    audio = "none"
    if facts.has_audio:
        audio = "copy" if streams.audio_codec in MP4_AUDIO else "aac"

    # 1. container: remux whatever MP4 can carry; transcode the rest
    if "container.unsupported" in rules:
        steps.append(
            Step(
                "remux",
                "container.unsupported",
                True,
                f"remux {facts.container.upper()} to MP4 (-c copy, +faststart)",
            )
        )
    if codec and codec not in MP4_VIDEO:
        reencode = True
        steps.append(
            Step(
                "transcode_video",
                "container.unsupported" if "container.unsupported" in rules else "container.codec",
                False,
                f"{codec} cannot go into MP4: encode it with {encoder}",
            )
        )
    if audio == "aac":
        steps.append(
            Step(
                "transcode_audio",
                "container.unsupported" if "container.unsupported" in rules else "container.codec",
                False,
                f"{streams.audio_codec or 'the audio'} cannot go into MP4: encode it as AAC",
            )
        )
    if facts.fps is None and "container.unsupported" in rules:
        # FLV, MPEG-TS and the like: the reader knows little before the remux (a TS has no
        # frame rate to read); plan the rest from the remuxed file's own facts in the next round.
        keeping = _keeping(facts, streams, reencode)
        return _finish(steps, notes, reencode, encoder, pix_fmt, audio=audio, keeping=keeping)

    # 2./3. frame rate
    source_rate = targets.source_rate(facts)
    if source_rate is None:
        return Plan(unfixable="the frame rate could not be read")
    variable = facts.fps_mode == "VFR" or bool(warnings & {"fps.variable", "fps.average_differs"})
    speed = Fraction(1)
    atempo: Fraction | None = None
    target_rate = targets.nearest_allowed(source_rate, policy)
    duration = facts.duration
    if "fps.not_allowed" in rules or variable:
        rule = "fps.not_allowed" if "fps.not_allowed" in rules else _first(warnings, "fps.")
        retime = None if variable else targets.lossless_rate(source_rate, duration, policy)
        if retime is not None:
            target_rate = retime
            speed = retime / source_rate
            slower = "faster" if speed > 1 else "slower"
            change = abs(float(speed) - 1) * 100
            steps.append(
                Step(
                    "retime",
                    rule,
                    True,
                    f"{targets.show_rate(source_rate)} → {targets.show_rate(retime)} fps by "
                    "rescaling timestamps: every video packet stays, the clip plays "
                    f"{change:.3g}% {slower}",
                )
            )
            if facts.has_audio and abs(float(speed) - 1) <= AUDIO_DRIFT_OK:
                drift_ms = duration * abs(1 - 1 / float(speed)) * 1000
                notes.append(
                    f"audio kept as is: it drifts {drift_ms:.1f} ms behind by the end "
                    "(under one frame)"
                )
            elif facts.has_audio:
                atempo = speed
                audio = "aac"
                steps.append(
                    Step(
                        "retime_audio",
                        rule,
                        False,
                        f"re-time the audio by {float(speed):.4g}× (atempo, pitch kept) "
                        "and encode it as AAC, to stay in sync",
                    )
                )
        else:
            target_rate = targets.converted_rate(source_rate, policy)
            reencode = True
            what = "variable rate" if variable else f"{targets.show_rate(source_rate)} fps"
            steps.append(
                Step(
                    "convert_fps",
                    rule,
                    False,
                    f"{what} → constant {targets.show_rate(target_rate)} fps (fps filter: "
                    "frames dropped or repeated, re-encoded)",
                )
            )

    # 4. duration, measured on the re-timed clip
    retimed = duration / float(speed)
    cut_s, extend_to = targets.duration_target(retimed, policy, extend)
    extend_mode = extend or "freeze"
    if cut_s is not None:
        reencode = reencode or exact_cut
        how = "exact cut, re-encoded" if exact_cut else "stream-copy cut, re-checked"
        steps.append(
            Step(
                "cut",
                "duration.out_of_range",
                not exact_cut,
                f"cut the tail: {retimed:.3f} s → {cut_s:g} s ({how})",
            )
        )
    if extend_to is not None:
        reencode = True
        if extend_mode == "slow":
            speed = (
                speed
                * Fraction(retimed).limit_denominator(100000)
                / Fraction(extend_to).limit_denominator(100000)
            )
            if facts.has_audio:
                atempo = speed
                audio = "aac"
        elif extend_mode == "loop" and facts.has_audio:
            audio = "aac"
        elif facts.has_audio:
            audio = "aac"  # silence pads the audio to the new length
        motion = {
            "freeze": "holds the last frame (motion stops)",
            "loop": "plays it again from the video's first frame (motion jumps back)",
            "slow": "slows it down (motion and audio slower)",
        }[extend_mode]
        steps.append(
            Step(
                "extend",
                "duration.out_of_range",
                False,
                f"extend {retimed:.3f} s → {extend_to:g} s: {extend_mode} {motion}",
            )
        )

    # 5. resolution
    size, padded = targets.fit(facts.width, facts.height, policy)
    if size is not None:
        reencode = True
        rule = next((r for r in ("resolution.width", "resolution.height") if r in rules), "")
        steps.append(
            Step(
                "scale",
                rule or "resolution.width",
                False,
                f"scale {facts.width}×{facts.height} → {size[0]}×{size[1]} (aspect kept, even "
                "sides; rotation metadata kept)",
            )
        )
        if padded is not None and padded != size:
            steps.append(
                Step(
                    "pad",
                    rule or "resolution.width",
                    False,
                    f"pad to {padded[0]}×{padded[1]} with black bars: an aspect ratio of "
                    f"{facts.width / facts.height:.2f}:1 cannot fit "
                    f"{policy.width_px[0]}–{policy.width_px[1]} × "
                    f"{policy.height_px[0]}–{policy.height_px[1]}",
                )
            )
    if "container.moov_at_end" in warnings and not steps:
        steps.append(
            Step(
                "faststart",
                "container.moov_at_end",
                True,
                "move the index (moov) before the media data (-c copy +faststart)",
            )
        )
    if reencode:
        # One encode does everything: the lossless steps ride along in it and lose that property,
        # and their words say so (no "every video packet stays" on a re-encoded step).
        steps = [reencoded(s) for s in steps]
        if decoders is not None and codec and codec not in decoders:
            return Plan(
                unfixable=f"this ffmpeg has no {codec} decoder, and the fix needs to re-encode "
                "the video"
            )
        if encoders is not None and encoder not in encoders:
            return Plan(unfixable=f"this ffmpeg has no {encoder} encoder, which the fix needs")
        family = {"libx264": "H.264", "libx265": "HEVC"}[encoder]
        if depth_note:
            notes.append(depth_note)
        elif "transcode_video" not in {s.action for s in steps} and codec not in {"h264", "hevc"}:
            notes.append(f"{codec or 'the video'} is re-encoded as {family} (no encoder kept here)")
        if streams.alpha:
            notes.append(
                f"the alpha channel ({streams.pix_fmt}) cannot go into the MP4: transparent "
                f"areas are composited over {keep.ALPHA_BACKGROUND_NAME}, not left black"
            )
    grid = None
    ms_clock = streams.time_base == Fraction(1, 1000)  # Matroska, WebM, FLV: rounded to 1 ms
    if not reencode and not variable and (speed != 1 or ms_clock):
        grid = targets.timestamp_grid(source_rate, speed, streams.time_base)
        if grid is not None and ms_clock:
            notes.append(
                "the millisecond timestamps are snapped to the frame grid (packets unchanged)"
            )
    return Plan(
        steps=tuple(steps),
        reencode=reencode,
        encoder=encoder,
        codec=codec,
        profile=streams.profile,
        pix_fmt=pix_fmt,
        speed=speed,
        source_rate=source_rate,
        target_rate=target_rate,
        cut_s=cut_s,
        extend_to_s=extend_to,
        extend_mode=extend_mode,
        loop_s=duration if extend_to is not None and extend_mode == "loop" else 0.0,
        frame=(facts.width, facts.height),
        size=size,
        padded=padded if size is not None and padded != size else None,
        audio=audio,
        atempo=atempo,
        grid=grid,
        seek_s=streams.video_start_s if streams.video_start_s >= LATE_VIDEO_S else 0.0,
        notes=tuple(notes),
        **_keeping(facts, streams, reencode),
    )


def _finish(
    steps: list[Step],
    notes: list[str],
    reencode: bool,
    encoder: str,
    pix_fmt: str,
    *,
    audio: str,
    keeping: dict[str, Any],
) -> Plan:
    return Plan(
        steps=tuple(steps),
        reencode=reencode,
        encoder=encoder,
        pix_fmt=pix_fmt,
        audio=audio,
        notes=(*notes, "the rest is planned from the remuxed file's own facts"),
        **keeping,
    )


def _keeping(facts: Facts, streams: StreamInfo, reencode: bool) -> dict[str, Any]:
    """The Plan fields that say which track is fixed and what else the output keeps."""
    return {
        "video_map": video_map(facts),
        "subtitles": keep.text_subtitles(streams),
        "flatten_alpha": reencode and streams.alpha,
        "square_pixels": facts.pixel_aspect == "1:1",
        "dropped": keep.dropped(streams),
    }


def _first(warnings: set[str], prefix: str) -> str:
    return next((w for w in sorted(warnings) if w.startswith(prefix)), prefix + "variable")
