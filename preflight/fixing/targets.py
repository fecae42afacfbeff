"""The numbers a fix aims at: the allowed rate a clip is re-timed or converted to, the duration
it is cut or extended to, the size it is scaled (and padded) to, and the tick grid a lossless
re-time lands on. Pure arithmetic on Facts and the Policy; plan.py turns them into steps.
"""

from __future__ import annotations

from fractions import Fraction

from .deps import Facts, Policy

MAX_LOSSLESS_SPEED_CHANGE = 0.05  # 25 -> 24 fps plays 4% slower: fine; 50 -> 60 is not
_EPSILON = 1e-6


def source_rate(facts: Facts) -> Fraction | None:
    """The nominal input rate, exact where the reader gave a fraction (30000/1001)."""
    if facts.fps_exact:
        try:
            rate = Fraction(facts.fps_exact)
        except (ValueError, ZeroDivisionError):
            rate = Fraction(0)
        if rate > 0:
            return rate
    if facts.fps:
        return Fraction(facts.fps).limit_denominator(1001)
    return None


def show_rate(rate: Fraction) -> str:
    """29.97, 25: as a person writes a frame rate."""
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def nearest_allowed(rate: Fraction, policy: Policy) -> Fraction:
    best = min(policy.fps_allowed, key=lambda r: abs(r - float(rate)))
    return Fraction(best).limit_denominator(1001)


def _in_window(duration: float, policy: Policy) -> bool:
    return any(lo - _EPSILON <= duration <= hi + _EPSILON for lo, hi in policy.duration_windows)


def lossless_rate(rate: Fraction, duration: float, policy: Policy) -> Fraction | None:
    """An allowed rate reached by a speed change of at most 5% (NTSC, 25 -> 24), or None.

    A re-time must not push a clip out of its window (a cut it did not need); a clip already
    out of every window is cut or extended on the re-timed timeline anyway.
    """
    candidates = []
    for allowed in policy.fps_allowed:
        target = Fraction(allowed).limit_denominator(1001)
        change = abs(float(target / rate) - 1)
        if change > MAX_LOSSLESS_SPEED_CHANGE:
            continue
        if _in_window(duration, policy) and not _in_window(duration / float(target / rate), policy):
            continue
        candidates.append((change, target))
    return min(candidates)[1] if candidates else None


def converted_rate(rate: Fraction, policy: Policy) -> Fraction:
    """The allowed rate a frame conversion lands on: an exact multiple (15 -> 30) if there is
    one, since repeating every frame the same number of times keeps motion even; else the
    nearest."""
    for allowed in sorted(policy.fps_allowed):
        ratio = Fraction(allowed).limit_denominator(1001) / rate
        if ratio >= 1 and ratio.denominator == 1:
            return Fraction(allowed).limit_denominator(1001)
    return nearest_allowed(rate, policy)


def duration_target(
    duration: float, policy: Policy, extend: str | None
) -> tuple[float | None, float | None]:
    """(cut to, extend to): the longest the windows allow, never shorter than needed."""
    if _in_window(duration, policy):
        return None, None
    windows = sorted(policy.duration_windows)
    below = [hi for lo, hi in windows if hi < duration]
    above = [lo for lo, hi in windows if lo > duration]
    if not below:
        return None, min(above)
    if above and extend is not None:
        return None, min(above)
    return max(below), None


def fit(width: int, height: int, policy: Policy) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """(scaled size or None when it already fits, the frame after padding)."""
    (wlo, whi), (hlo, hhi) = policy.width_px, policy.height_px
    if wlo <= width <= whi and hlo <= height <= hhi:
        return None, (width, height)
    s_min = max(wlo / width, hlo / height)
    s_max = min(whi / width, hhi / height)
    if s_min <= s_max:
        scale = min(max(1.0, s_min), s_max)
        size = _even_within(width * scale, wlo, whi), _even_within(height * scale, hlo, hhi)
        return size, size
    # Beyond the aspect ratio the ranges allow: fit the long side, pad the short one.
    scale = s_max
    size = (_even_within(width * scale, 2, whi), _even_within(height * scale, 2, hhi))
    padded = (max(size[0], _even_up(wlo)), max(size[1], _even_up(hlo)))
    return size, padded


def _even_within(value: float, lo: int, hi: int) -> int:
    even = 2 * round(value / 2)
    if even < lo:
        even = _even_up(lo)
    if even > hi:
        even = hi - hi % 2
    return even


def _even_up(value: int) -> int:
    return value + value % 2


def timestamp_grid(
    rate: Fraction, speed: Fraction, time_base: Fraction | None
) -> tuple[int, int] | None:
    """(ticks per second, ticks per frame) on which the re-timed frames land on whole ticks.

    None when the source already counts whole ticks per frame that stay whole after 1/speed (a
    29.97 fps MP4 at 1/30000: 1001 ticks -> 1000), so the timestamps can be scaled in place.
    """
    if time_base is not None and time_base.numerator == 1 and time_base != Fraction(1, 1000):
        per_frame = (1 / time_base) / rate
        if per_frame.denominator == 1 and (per_frame / speed).denominator == 1:
            return None
    # ticks per second = rate.numerator * m, so a frame lasts m * rate.denominator ticks; pick the
    # smallest m (at least 10000 ticks a second, as the MP4 muxer likes) that keeps
    # frame / speed whole.
    m = max(1, -(-10000 // rate.numerator))
    while ((m * rate.denominator) / speed).denominator != 1 and m < 10_000_000:
        m += 1
    return rate.numerator * m, m * rate.denominator
