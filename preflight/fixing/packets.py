"""The decisions that need the video's packets (read by a stream copy into framemd5): where a
copy cut may end (after the last packet whose presentation needs no later one), the smart cut
(copy up to such a point, re-encode only the frames from there to the limit) when none lands near
the limit, and whether millisecond timestamps sit on a frame grid. refine() applies them to a Plan.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from fractions import Fraction

from . import graph, spawn
from .deps import Policy
from .plan import Plan, SmartCut, Step

# A copy cut may end this much before the limit and still be taken: x264/x265 defaults group
# 2-5 frames around their B-frames (at most 0.21 s at 24 fps), and a fifth of a second of the
# tail is a smaller loss than re-encoding a join. Further short, the smart cut fills the gap.
COPY_CUT_SLACK_S = 0.25
_EPSILON = 1e-6
# The source's H.264 profile (FFmpeg's name) -> libx264's, so the encoded frames after a smart
# cut's join claim no more than the stream's own header does.
X264_PROFILES = {
    "constrained baseline": "baseline",
    "baseline": "baseline",
    "main": "main",
    "high": "high",
}


@dataclass(frozen=True)
class Packets:
    """The video packets of one file in decode order, timestamps in `time_base` ticks."""

    time_base: Fraction
    pts: tuple[int, ...]
    dts: tuple[int, ...]
    duration: tuple[int, ...]
    md5: tuple[str, ...]


def read_packets(
    path: str, cancel: threading.Event | None = None, *, stream: str = "0:V:0"
) -> Packets | None:
    """Every packet of the video `stream` (framemd5 of a stream copy: no decoding); None when
    a timestamp is missing (a raw stream), since no cut point can then be computed."""
    argv = [spawn.find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error"]
    argv += ["-i", graph.url(path), "-map", stream, "-c", "copy", "-f", "framemd5", "-"]
    out, _ = spawn.run(argv, 120.0, cancel)
    time_base = Fraction(0)
    rows: list[tuple[int, int, int, str]] = []
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("#tb "):
            time_base = Fraction(line.split(":", 1)[1].strip())
            continue
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            rows.append((int(fields[1]), int(fields[2]), int(fields[3]), fields[5]))
        except (IndexError, ValueError):
            return None  # NOPTS and the like
    if not rows or time_base <= 0:
        return None
    dts, pts, duration, md5 = zip(*rows, strict=True)
    return Packets(time_base, pts, dts, duration, md5)


def complete_prefixes(packets: Packets) -> list[tuple[int, int]]:
    """(N, ticks) for every N such that the first N packets in decode order present exactly the
    first N frames (no frame shown needs a later packet), with the ticks those frames last."""
    order = sorted(range(len(packets.pts)), key=lambda i: packets.pts[i])
    rank = {index: place for place, index in enumerate(order)}
    first = packets.pts[order[0]]
    found = []
    highest = -1
    for index in range(len(order)):
        highest = max(highest, rank[index])
        if highest == index:
            count = index + 1
            if count < len(order):
                end = packets.pts[order[count]]
            else:
                end = packets.pts[order[-1]] + packets.duration[order[-1]]
            found.append((count, end - first))
    return found


def frames_within(packets: Packets, limit_ticks: Fraction) -> tuple[int, int]:
    """(frames, ticks): the most frames in presentation order that end by `limit_ticks`."""
    ordered = sorted(range(len(packets.pts)), key=lambda i: packets.pts[i])
    first = packets.pts[ordered[0]]
    count, ticks = 0, 0
    for index in ordered:
        end = packets.pts[index] + packets.duration[index] - first
        if end > limit_ticks:
            break
        count, ticks = count + 1, end
    return count, ticks


def plan_cut(plan: Plan, packets: Packets | None, floor_s: float, *, smart: bool = True) -> Plan:
    """The copy cut's plan made exact: a packet-exact copy cut when one ends within
    COPY_CUT_SLACK_S of the limit (and at or after `floor_s`, the window's start), else a smart
    cut where the stream allows one, else an exact cut re-encoded as a whole."""
    if plan.cut_s is None or plan.reencode or packets is None:
        return plan
    tb = packets.time_base
    limit = Fraction(plan.cut_s).limit_denominator(1_000_000) * plan.speed
    limit_ticks = limit / tb + Fraction(_EPSILON) / tb
    total = len(packets.pts)
    if plan.grid is not None and plan.source_rate:
        # Millisecond timestamps, or a re-time: the output's frames land on the grid, so a
        # prefix lasts its frame count at the nominal rate (a rounded tick could hide 0.5 ms).
        rate = plan.source_rate
        prefixes = [(n, n / rate / tb) for n, _ in complete_prefixes(packets)]
    else:
        prefixes = [(n, Fraction(t)) for n, t in complete_prefixes(packets)]
    copyable = [(n, t) for n, t in prefixes if t <= limit_ticks]
    best = copyable[-1] if copyable else None
    if best is not None:
        end_s = float(best[1] * tb / plan.speed)
        if end_s >= max(plan.cut_s - COPY_CUT_SLACK_S, floor_s) - _EPSILON:
            detail = (
                f"stream copy of the first {best[0]} of {total} video packets, every one kept: "
                f"the last frame group that ends by {plan.cut_s:g} s; re-checked"
            )
            return _with_cut(plan, end_s, detail, lossless=True, cut_frames=best[0])
    join = _smart(plan, packets, best, limit_ticks) if smart else None
    if join is not None:
        end_s = float((join.end_pts - min(packets.pts)) * tb)
        kept = join.copy_frames
        detail = (
            f"smart cut: the first {kept} of {total} video packets copied unchanged, the last "
            f"{join.frames} frames ({float(join.frames * join.frame_ticks * tb):.3f} s) "
            f"re-encoded with libx264 and joined; re-checked"
        )
        scored = "SSIM and VMAF are scored on the re-encoded frames only (the copied ones are "
        scored += "the source's packets)"
        plan = replace(plan, notes=(*plan.notes, scored))
        return _with_cut(plan, end_s, detail, lossless=False, smart_cut=join)
    how = "exact cut, re-encoded: no frame group of the stream ends near the limit"
    return _exact(plan, how)


def _smart(
    plan: Plan, packets: Packets, best: tuple[int, Fraction] | None, limit_ticks: Fraction
) -> SmartCut | None:
    """A join after `best` where the stream allows one: H.264 at a constant frame duration,
    8-bit 4:2:0, copied without re-timing, from the container's start."""
    if best is None or plan.encoder != "libx264" or plan.pix_fmt != "yuv420p":
        return None
    profile = X264_PROFILES.get(plan.profile.lower() if plan.profile else "high")
    if profile is None:
        return None  # a profile libx264 cannot match on 8-bit 4:2:0 (High 4:4:4 Intra, ...)
    if plan.speed != 1 or plan.grid is not None or plan.seek_s or plan.codec != "h264":
        return None
    frame = packets.duration[0]
    ordered = sorted(packets.pts)
    if ordered[0] != 0:
        return None  # the copied part's timestamps are taken as they are, from 0
    if frame <= 0 or any(b - a != frame for a, b in itertools.pairwise(ordered)):
        return None
    frames, _ = frames_within(packets, limit_ticks)
    copied, _ = best
    if frames <= copied:
        return None
    join_pts = ordered[copied]
    last = copied - 1
    return SmartCut(
        copy_frames=copied,
        frames=frames - copied,
        join_pts=join_pts,
        end_pts=ordered[0] + frames * frame,
        frame_ticks=frame,
        # The re-encoded frames have no B-frames (pts = dts); their dts are moved back so the
        # first follows the last copied packet's by one frame, as the muxer needs.
        dts_shift=join_pts - (packets.dts[last] + frame),
        timescale=int(1 / packets.time_base) if packets.time_base.numerator == 1 else 0,
        time_base=packets.time_base,
        profile=profile,
    )


def _with_cut(plan: Plan, end_s: float, detail: str, *, lossless: bool, **changes: object) -> Plan:
    steps = tuple(
        replace(s, lossless=lossless, detail=_cut_detail(s, end_s, detail))
        if s.action == "cut"
        else s
        for s in plan.steps
    )
    return replace(plan, steps=steps, cut_s=end_s, **changes)  # type: ignore[arg-type]


def _exact(plan: Plan, how: str) -> Plan:
    steps = tuple(
        replace(s, lossless=False, detail=_cut_detail(s, plan.cut_s or 0, how))
        if s.action == "cut"
        else replace(s, lossless=False)
        if s.action not in {"transcode_audio", "retime_audio"}
        else s
        for s in plan.steps
    )
    return replace(plan, steps=steps, reencode=True)


def _cut_detail(step: Step, end_s: float, how: str) -> str:
    """`cut the tail: 6.000 s → 5.467 s (…)` from the planned step's `cut the tail: 6.000 s → …`."""
    head = step.detail.split("→", 1)[0]
    return f"{head}→ {end_s:.3f} s ({how})"


def on_grid(packets: Packets, rate: Fraction) -> bool:
    """Every frame starts within a tick of its place on a constant `rate` grid, no two in one
    place: millisecond timestamps (Matroska, WebM) of a constant-rate stream, rounded."""
    frame = 1 / (rate * packets.time_base)  # ticks per frame, a fraction on a 1/1000 clock
    first = min(packets.pts)
    places = set()
    for pts in packets.pts:
        place = round((pts - first) / frame)
        if abs(pts - first - place * frame) > 1 or place in places:
            return False
        places.add(place)
    return True


def refine(plan: Plan, path: str, policy: Policy, cancel: threading.Event | None = None) -> Plan:
    """`plan` made exact from `path`'s video packets: a copy cut that ends on a packet, and a
    frame grid only for timestamps that sit on one (else the remux comes first, alone)."""
    if plan.reencode or (plan.cut_s is None and plan.grid is None):
        return plan
    found = read_packets(path, cancel, stream=f"0:{plan.video_map}")  # the judged track
    if plan.grid is not None and plan.source_rate and found is not None:
        rough = found.time_base == Fraction(1, 1000)
        remux = "remux" in {s.action for s in plan.steps}
        if rough and remux and not on_grid(found, plan.source_rate):
            return plan.remux_first(
                "the millisecond timestamps are not on one frame grid (a variable rate): "
                "remuxed as they are first"
            )
    if plan.cut_s is None:
        return plan
    cut = plan.cut_s
    floor = max((lo for lo, hi in policy.duration_windows if lo <= cut + _EPSILON), default=0.0)
    return plan_cut(plan, found, floor)
