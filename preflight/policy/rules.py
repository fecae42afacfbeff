"""The rules on the media itself: container, stream, duration, resolution and fps families.

Every number they use comes from the Policy; this module holds only how to apply them to Facts.
"""

from __future__ import annotations

import math

from ..facts import Facts
from ..probing.names import brand_family
from ..verdict import Violation
from .load import Policy

# Floating-point slack only: the limits are inclusive, and 5.5 s must pass however it was summed.
_EPSILON = 1e-6
_NTSC = {
    23.976: "24000/1001",
    29.97: "30000/1001",
    59.94: "60000/1001",
    47.952: "48000/1001",
    119.88: "120000/1001",
}
_MP4_EXTENSIONS = {"mp4", "m4v", "m4a", "3gp", "3g2", "mp4v"}
_MOV_EXTENSIONS = {"mov", "qt"}


def judge_media(facts: Facts, policy: Policy) -> tuple[list[Violation], list[Violation]]:
    """The violations and warnings of the media rules, in report order; nothing disabled yet."""
    violations: list[Violation] = []
    warnings: list[Violation] = []
    _judge_container(facts, policy, violations, warnings)
    if facts.video_tracks == 0 or facts.width is None:
        violations.append(
            Violation(
                "stream.no_video",
                "no video track: the file holds only audio, data or cover art",
                facts.video_tracks,
                ">= 1 video track",
                "export the video itself, not an audio file or a still",
            )
        )
    else:
        _judge_duration(facts, policy, violations, warnings)
        _judge_resolution(facts, policy, violations)
        _judge_fps(facts, policy, violations, warnings)
        _judge_stream_warnings(facts, warnings)
    return violations, warnings


def _judge_container(
    facts: Facts, policy: Policy, violations: list[Violation], warnings: list[Violation]
) -> None:
    if facts.container not in policy.containers:
        allowed = " or ".join(c.upper() for c in policy.containers)
        violations.append(
            Violation(
                "container.unsupported",
                f"the content is {facts.container.upper()}, not {allowed}"
                + (f" (whatever the .{facts.extension} name says)" if facts.extension else ""),
                facts.container,
                list(policy.containers),
                "ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p -c:a aac -movflags +faststart "
                "OUT.mp4",
            )
        )
    expected = (
        "mp4"
        if facts.extension in _MP4_EXTENSIONS
        else "mov"
        if facts.extension in _MOV_EXTENSIONS
        else None
    )
    if expected is not None and expected != facts.container:
        warnings.append(
            Violation(
                "container.extension_mismatch",
                f"named .{facts.extension} but the content is {facts.container.upper()}",
                facts.container,
                expected,
                "rename the file to match its content, or remux: ffmpeg -i INPUT -c copy OUT.mp4",
            )
        )
    family = brand_family(facts.brand)
    if family:
        warnings.append(
            Violation(
                "container.brand_family",
                f"the file is branded {family} ({facts.brand}), a narrower MP4 family some servers "
                "treat differently",
                facts.brand,
                "isom, mp41, mp42 or qt",
                "remux as plain MP4: ffmpeg -i INPUT -c copy -brand mp42 OUT.mp4",
            )
        )
    if facts.faststart is False and not facts.fragmented:
        warnings.append(
            Violation(
                "container.moov_at_end",
                "the index (moov) is after the media data: a server must fetch the end of the file "
                "before it can start",
                "moov after mdat",
                "moov before mdat",
                "ffmpeg -i INPUT -c copy -movflags +faststart OUT.mp4",
            )
        )


def _judge_duration(
    facts: Facts, policy: Policy, violations: list[Violation], warnings: list[Violation]
) -> None:
    duration = facts.duration
    windows = policy.duration_windows
    allowed = " or ".join(f"{lo:g}–{hi:g} s" for lo, hi in windows)
    if duration is None:
        # The reader gave no duration (MediaInfo on an Ogg, say): unknown is not out of range,
        # and a file must not be rejected for what we could not read. The API will measure it.
        warnings.append(
            Violation(
                "duration.unknown",
                "the duration of the video track is unknown: the reader gave none",
                None,
                allowed,
                "read it with another backend: preflight check --probe ffprobe FILE",
            )
        )
        return
    if not any(lo - _EPSILON <= duration <= hi + _EPSILON for lo, hi in windows):
        violations.append(
            Violation(
                "duration.out_of_range",
                f"the video lasts {duration:.3f} s; allowed: {allowed}",
                round(duration, 6),
                [[lo, hi] for lo, hi in windows],
                _duration_hint(duration, windows),
            )
        )
    container = facts.container_duration
    if container is not None and abs(container - duration) > policy.container_duration_tolerance_s:
        warnings.append(
            Violation(
                "duration.container_differs",
                f"the container lasts {container:.3f} s but the video {duration:.3f} s "
                "(audio longer than video, or an edit list); the server might measure the longer "
                "one",
                round(container, 6),
                f"within {policy.container_duration_tolerance_s:g} s of the video",
                "trim audio to the video: ffmpeg -i INPUT -c copy -shortest OUT.mp4",
            )
        )


def _duration_hint(duration: float, windows: tuple[tuple[float, float], ...]) -> str:
    below = [lo for lo, _ in windows if duration < lo]
    above = [hi for _, hi in windows if duration > hi]
    if above:
        target = max(above)
        return f"cut it to {target:g} s or less: ffmpeg -i INPUT -t {target:g} -c:v libx264 OUT.mp4"
    target = min(below)
    return (
        f"it must last at least {target:g} s: use a longer take, or loop it: "
        f"ffmpeg -stream_loop -1 -i INPUT -t {target:g} -c:v libx264 OUT.mp4"
    )


def _judge_resolution(facts: Facts, policy: Policy, violations: list[Violation]) -> None:
    for side, value, (lo, hi) in (
        ("width", facts.width, policy.width_px),
        ("height", facts.height, policy.height_px),
    ):
        if value is None or lo <= value <= hi:
            continue
        violations.append(
            Violation(
                f"resolution.{side}",
                f"the {side} is {value} px; allowed: {lo}–{hi} px (coded pixels, both sides)",
                value,
                [lo, hi],
                _resolution_hint(facts, policy),
            )
        )


def _resolution_hint(facts: Facts, policy: Policy) -> str:
    width, height = facts.width or 0, facts.height or 0
    lo = max(policy.width_px[0], policy.height_px[0])
    hi = min(policy.width_px[1], policy.height_px[1])
    short, long_ = sorted((width, height))
    scale = max(lo / short if short < lo else 1.0, 1.0)
    scale = min(scale, hi / long_) if long_ * scale > hi else scale
    new_w, new_h = (2 * round(width * scale / 2), 2 * round(height * scale / 2))
    if not (lo <= new_w <= hi and lo <= new_h <= hi):
        return (
            f"crop or pad to fit {lo}–{hi} px on both sides, "
            "e.g. ffmpeg -i INPUT -vf scale=1280:720 OUT.mp4"
        )
    return f"scale it: ffmpeg -i INPUT -vf scale={new_w}:{new_h} -c:a copy OUT.mp4"


def _judge_fps(
    facts: Facts, policy: Policy, violations: list[Violation], warnings: list[Violation]
) -> None:
    fps = facts.fps
    allowed = ", ".join(f"{r:g}" for r in policy.fps_allowed)
    if fps is None:
        violations.append(
            Violation(
                "fps.not_allowed",
                "the frame rate could not be read",
                None,
                list(policy.fps_allowed),
                "",
            )
        )
        return
    # Every fix names an allowed rate: the one nearest to what the file has.
    nearest = min(policy.fps_allowed, key=lambda r: abs(r - fps))
    if not any(abs(fps - rate) <= policy.fps_tolerance + _EPSILON for rate in policy.fps_allowed):
        ntsc = nearest_ntsc(fps)
        label = f"{fps:.3f}".rstrip("0").rstrip(".")
        what = f"{label} fps (NTSC {ntsc}, not {nearest:g})" if ntsc else f"{label} fps"
        violations.append(
            Violation(
                "fps.not_allowed",
                f"the frame rate is {what}; allowed: {allowed} fps",
                fps,
                list(policy.fps_allowed),
                f"convert it: ffmpeg -i INPUT -vf fps={nearest:g} -c:a copy OUT.mp4",
            )
        )
    average = facts.fps_average
    if average is not None and abs(average - fps) > policy.fps_average_tolerance:
        warnings.append(
            Violation(
                "fps.average_differs",
                f"nominal {fps:.3f} fps but the frames average {average:.3f} fps; the server's own "
                "measure is not documented",
                average,
                f"within {policy.fps_average_tolerance:g} of {fps:.3f}",
                f"re-time it to a constant rate: ffmpeg -i INPUT -vf fps={nearest:g} OUT.mp4",
            )
        )
    if facts.fps_mode == "VFR":
        warnings.append(
            Violation(
                "fps.variable",
                "variable frame rate: frame durations differ",
                "VFR",
                "CFR",
                f"make it constant: ffmpeg -i INPUT -vf fps={nearest:g} OUT.mp4",
            )
        )


def _judge_stream_warnings(facts: Facts, warnings: list[Violation]) -> None:
    if facts.rotation:
        warnings.append(
            Violation(
                "stream.rotation",
                f"the picture is rotated {facts.rotation}° by metadata; a server may ignore it",
                facts.rotation,
                0,
                "bake the rotation in: ffmpeg -i INPUT -c:v libx264 -metadata:s:v rotate=0 OUT.mp4",
            )
        )
    if facts.pixel_aspect != "1:1":
        warnings.append(
            Violation(
                "stream.non_square_pixels",
                f"pixels are not square ({facts.pixel_aspect}): displayed as "
                f"{facts.display_width}x{facts.display_height}, "
                f"coded as {facts.width}x{facts.height}",
                facts.pixel_aspect,
                "1:1",
                "ffmpeg -i INPUT -vf scale=iw*sar:ih,setsar=1 OUT.mp4",
            )
        )
    if facts.video_tracks > 1:
        # The judged track by its ID: `0:v:0` is the first video stream, not the one judged.
        keep = f"0:i:{facts.video_track_id}" if facts.video_track_id else "0:V:0"
        warnings.append(
            Violation(
                "stream.extra_video_tracks",
                f"{facts.video_tracks} video tracks: judged the one a player plays; "
                "a server may pick another",
                facts.video_tracks,
                1,
                f"keep the judged one: ffmpeg -i INPUT -map {keep} -map 0:a? -c copy OUT.mp4",
            )
        )


def nearest_ntsc(fps: float) -> str | None:
    """The exact NTSC rational for a rate such as 29.97, or None."""
    return next(
        (exact for rate, exact in _NTSC.items() if math.isclose(fps, rate, abs_tol=0.005)), None
    )
