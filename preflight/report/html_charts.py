"""The three limit pictures of an HTML report card: duration, size and frame rate, as inline SVG.

Each SVG is drawn in its own units (viewBox) and sized by the page's CSS (html.py).
"""

from __future__ import annotations

import math
from html import escape

from ..facts import Facts
from ..policy import Policy

# Colours come from the page's classes, so pass/reject read the same everywhere on the page.


def draw_charts(facts: Facts, policy: Policy) -> str:
    """The three pictures of where `facts` sit in the limits of `policy`, in one <div>."""
    figures = [
        _figure(
            "Duration", _duration_svg(facts.duration, policy), _duration_caption(facts, policy)
        ),
        _figure("Size", _size_svg(facts.width, facts.height, policy), _size_caption(facts, policy)),
        _figure("Frame rate", _fps_svg(facts.fps, policy), _fps_caption(facts, policy)),
    ]
    return f'<div class="charts">{"".join(figures)}</div>'


def _figure(name: str, svg: str, caption: str) -> str:
    return (
        f'<figure class="chart"><div class="chart-name">{name}</div>{svg}'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _duration_caption(facts: Facts, policy: Policy) -> str:
    value = "unknown" if facts.duration is None else f"{facts.duration:.3f} s"
    return f"{value}; allowed {windows_text(policy)}"


def _size_caption(facts: Facts, policy: Policy) -> str:
    value = f"{facts.width}×{facts.height}" if facts.width and facts.height else "unknown"
    if policy.width_px == policy.height_px:
        allowed = f"each side {policy.width_px[0]}–{policy.width_px[1]} px"
    else:
        allowed = f"width {policy.width_px[0]}–{policy.width_px[1]}, height "
        allowed += f"{policy.height_px[0]}–{policy.height_px[1]} px"
    return f"{value}; allowed {allowed}"


def _fps_caption(facts: Facts, policy: Policy) -> str:
    value = "unknown" if facts.fps is None else f"{number_text(facts.fps)} fps"
    return f"{value}; allowed {rates_text(policy)}"


def _in_windows(value: float, windows: tuple[tuple[float, float], ...]) -> bool:
    return any(lo <= value <= hi for lo, hi in windows)


def _svg(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>{body}</svg>'
    )


def _duration_svg(duration: float | None, policy: Policy) -> str:
    top = max(12.0, *(hi for _, hi in policy.duration_windows))
    if duration is not None:
        top = max(top, math.ceil(duration + 0.5))
    left, right, axis_y = 10.0, 270.0, 44.0

    def x(seconds: float) -> float:
        return left + (right - left) * seconds / top

    parts = [
        f'<rect class="zone" x="{x(lo):.1f}" y="{axis_y - 18}" '
        f'width="{x(hi) - x(lo):.1f}" height="18"/>'
        for lo, hi in policy.duration_windows
    ]
    parts.append(f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}"/>')
    step = 1 if top <= 15 else 2 if top <= 30 else 10
    for second in range(0, int(top) + 1, step):
        tall = second % (2 * step) == 0
        parts.append(
            f'<line class="tick" x1="{x(second):.1f}" y1="{axis_y}" '
            f'x2="{x(second):.1f}" y2="{axis_y + (5 if tall else 3)}"/>'
        )
        if tall:
            parts.append(f'<text x="{x(second):.1f}" y="{axis_y + 16}">{second}</text>')
    if duration is not None:
        fit = "in" if _in_windows(duration, policy.duration_windows) else "out"
        parts.append(_marker(x(duration), axis_y, f"{number_text(duration)} s", fit, left, right))
    return _svg(280, 66, "duration in seconds against the allowed windows", "".join(parts))


def _marker(at: float, axis_y: float, label: str, fit: str, left: float, right: float) -> str:
    anchor = min(max(at, left + 22), right - 22)  # keep the label inside the picture
    return (
        f'<g class="mark {fit}"><line x1="{at:.1f}" y1="{axis_y - 24}" x2="{at:.1f}" '
        f'y2="{axis_y + 2}"/><circle cx="{at:.1f}" cy="{axis_y - 24}" r="3.5"/>'
        f'<text x="{anchor:.1f}" y="{axis_y - 31}">{escape(label)}</text></g>'
    )


def _size_svg(width: int | None, height: int | None, policy: Policy) -> str:
    largest = max(2400, width or 0, height or 0)
    top = math.ceil(largest / 400) * 400
    origin_x, origin_y, side = 34.0, 100.0, 92.0

    def px(value: float) -> float:
        return origin_x + side * value / top

    def py(value: float) -> float:
        return origin_y - side * value / top

    (w_lo, w_hi), (h_lo, h_hi) = policy.width_px, policy.height_px
    parts = [
        f'<rect class="frame" x="{origin_x}" y="{origin_y - side}" '
        f'width="{side}" height="{side}"/>',
        f'<rect class="zone" x="{px(w_lo):.1f}" y="{py(h_hi):.1f}" '
        f'width="{px(w_hi) - px(w_lo):.1f}" height="{py(h_lo) - py(h_hi):.1f}"/>',
    ]
    # only the limits are labelled: the top of the scale would crowd the upper limit
    for value in sorted({0, w_lo, w_hi}):
        parts.append(f'<text x="{px(value):.1f}" y="{origin_y + 13}">{value}</text>')
    for value in sorted({h_lo, h_hi}):
        parts.append(
            f'<text class="end" x="{origin_x - 4}" y="{py(value) + 3.5:.1f}">{value}</text>'
        )
    parts.append(f'<text class="dim" x="{px(top / 2):.1f}" y="{origin_y + 24}">width</text>')
    parts.append(
        f'<text class="dim" transform="translate({origin_x + side + 12} {py(top / 2):.1f}) '
        f'rotate(90)">height</text>'
    )
    if width and height:
        fit = "in" if w_lo <= width <= w_hi and h_lo <= height <= h_hi else "out"
        parts.append(
            f'<g class="mark {fit}"><circle cx="{px(width):.1f}" cy="{py(height):.1f}" r="4"/></g>'
        )
    return _svg(146, 126, "width and height against the allowed box", "".join(parts))


def _fps_svg(fps: float | None, policy: Policy) -> str:
    top = max(65.0, math.ceil(fps + 5) if fps is not None else 0.0)
    left, right, axis_y = 10.0, 270.0, 44.0

    def x(rate: float) -> float:
        return left + (right - left) * rate / top

    parts = [f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}"/>']
    for tick in range(0, int(top) + 1, 10):
        parts.append(
            f'<line class="tick" x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" '
            f'y2="{axis_y + 3}"/>'
        )
    for rate in policy.fps_allowed:
        # the tolerance band is a fraction of a pixel at this scale: draw it at least 3 units wide
        band = max(x(rate + policy.fps_tolerance) - x(rate - policy.fps_tolerance), 3.0)
        parts.append(
            f'<rect class="zone-strong" x="{x(rate) - band / 2:.1f}" y="{axis_y - 18}" '
            f'width="{band:.1f}" height="18"/>'
            f'<text class="allowed" x="{x(rate):.1f}" y="{axis_y + 16}">{rate:g}</text>'
        )
    if fps is not None:
        fit = (
            "in" if any(abs(fps - r) <= policy.fps_tolerance for r in policy.fps_allowed) else "out"
        )
        parts.append(_marker(x(fps), axis_y, f"{number_text(fps)} fps", fit, left, right))
    return _svg(280, 66, "frame rate against the allowed rates", "".join(parts))


# The limits and values as text, shared with the page's summary table and facts line.


def number_text(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def windows_text(policy: Policy) -> str:
    return " or ".join(f"{lo:g}–{hi:g} s" for lo, hi in policy.duration_windows)


def rates_text(policy: Policy) -> str:
    rates = ", ".join(f"{r:g}" for r in policy.fps_allowed)
    return f"{rates} fps (±{policy.fps_tolerance:g})"
