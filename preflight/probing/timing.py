"""Timing and shape from the box reader's Layout: the nominal and average frame rate, the duration
a player presents (edit lists applied), the picture a player shows. The readings the corpus
README explains (../shared/corpus/README.md) are decided here, whichever backend runs.
"""

from __future__ import annotations

from math import gcd

from ..facts import BackendReading, Facts
from .bmff import Layout, Track
from .names import codec_from_fourcc

# Share of samples one duration must have to be taken as the nominal frame duration.
DOMINANT_SHARE = 0.8


def pick_video_track(layout: Layout) -> Track | None:
    """The track a player would play: an enabled video track with samples, else any video."""
    videos = [t for t in layout.tracks if t.is_video]
    playable = [t for t in videos if t.enabled and t.total_samples]
    ranked = playable or [t for t in videos if t.total_samples] or videos
    return ranked[0] if ranked else None


def facts_from_layout(layout: Layout, reading: BackendReading | None) -> Facts:
    brand = layout.major_brand.strip()
    is_qt = brand == "qt" or not layout.has_ftyp
    facts = Facts(
        container="mov" if is_qt else "mp4",
        brand=brand,
        size_bytes=layout.size_bytes,
        faststart=layout.faststart,
        fragmented=layout.fragmented,
        has_audio=any(t.handler == "soun" and t.total_samples for t in layout.tracks),
        video_tracks=sum(1 for t in layout.tracks if t.is_video),
        samples_complete=True,
    )
    facts.container_duration = _container_duration(layout)
    track = pick_video_track(layout)
    if track is None:
        return facts
    facts.video_codec = (
        reading.video_codec if reading and reading.video_codec else codec_from_fourcc(track.codec)
    )
    facts.width, facts.height = track.width or None, track.height or None
    facts.video_track_id = track.track_id or None
    facts.rotation = track.rotation
    if track.par and track.par[0] != track.par[1]:
        num, den = _lowest_terms(*track.par)
        facts.pixel_aspect = f"{num}:{den}"
    facts.display_width, facts.display_height = _display_size(track)
    facts.frame_count = track.total_samples
    _set_rates(facts, track)
    facts.duration = _presented_duration(track, layout.movie_timescale)
    # True when the edit list changes what is shown: an empty edit, or a trim of the media.
    media_s = track.total_ticks / track.timescale if track.timescale else None
    facts.edit_list = any(media_time == -1 for _, media_time, _ in track.edits) or (
        bool(track.edits)
        and media_s is not None
        and facts.duration is not None
        and abs(media_s - facts.duration) > 0.001
    )
    return facts


def _lowest_terms(num: int, den: int) -> tuple[int, int]:
    """num/den reduced, as fractions.Fraction would (which costs a check ~2 ms to import)."""
    common = gcd(num, den)
    return num // common, den // common


def _display_size(track: Track) -> tuple[int | None, int | None]:
    width = round(track.tkhd_width) or track.width
    height = round(track.tkhd_height) or track.height
    if not width or not height:
        return None, None
    if track.rotation in (90, 270):
        width, height = height, width
    return width, height


def _set_rates(facts: Facts, track: Track) -> None:
    if not track.timescale or not track.deltas:
        return
    total_ticks = track.total_ticks
    samples = track.total_samples
    deltas = track.deltas
    dominant, count = deltas.most_common(1)[0]
    if total_ticks and samples:
        facts.fps_average = round(samples * track.timescale / total_ticks, 6)
    # Nominal rate: the dominant frame duration when one clearly dominates (iPhone clips: 20-tick
    # frames at timescale 600 with a rare 21), else frames over the sum of sample durations.
    if dominant and count >= DOMINANT_SHARE * samples:
        num, den = _lowest_terms(track.timescale, dominant)
    elif total_ticks:
        num, den = _lowest_terms(samples * track.timescale, total_ticks)
    else:
        return
    facts.fps_exact = f"{num}/{den}"
    facts.fps_nominal = facts.fps = round(num / den, 6)  # int / int rounds exactly, as Fraction
    # Rounding jitter of one tick around the dominant duration is still a constant rate.
    body = [d for d in deltas if d and deltas[d] and not (d == track.last_delta and deltas[d] == 1)]
    steady = all(abs(d - dominant) <= 1 for d in body)
    facts.fps_mode = "CFR" if steady else "VFR"


def _presented_duration(track: Track, movie_timescale: int) -> float | None:
    if not track.timescale:
        return None
    media_s = track.total_ticks / track.timescale
    if not track.edits or not movie_timescale:
        return round(media_s, 6)
    total = 0.0
    leading = True
    for duration, media_time, _rate in track.edits:
        if media_time == -1:
            if not leading:  # a gap inside the presentation is shown as time; a lead-in is not
                total += duration / movie_timescale
            continue
        leading = False
        if duration == 0:  # fragmented files: "all of the media" (media_time skips decoder delay)
            total += media_s
        else:
            total += duration / movie_timescale
    return round(total, 6)


def _container_duration(layout: Layout) -> float | None:
    if layout.fragmented or not layout.movie_duration or not layout.movie_timescale:
        # Fragment headers (mehd, mvhd) are often wrong or "unknown": measure the fragments.
        durations = [
            _presented_duration(t, layout.movie_timescale)
            for t in layout.tracks
            if t.handler in ("vide", "soun")
        ]
        known = [d for d in durations if d is not None]
        return max(known) if known else None
    return round(layout.movie_duration / layout.movie_timescale, 6)
