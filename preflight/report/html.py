"""The HTML report for editors: a summary of the limits, then a card per source with a thumbnail,
its verdict, each problem with its fix, and three small pictures of where it sits in the limits.

One self-contained file: inline CSS and SVG, thumbnails as data: URIs, so it opens offline.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import ffmpeg

from ..facts import Facts
from ..policy import Policy
from ..urlcheck import is_url
from ..verdict import Result, Violation
from .junit import write_atomically

THUMB_BOX = (320, 240)  # the thumbnail fits inside this, aspect kept (portrait clips stay upright)
THUMB_TIMEOUT_S = 20.0  # per file: a damaged file must not hang the report
THUMB_WORKERS = 4
VERDICT_WORDS = {"pass": "PASS", "reject": "REJECT", "error": "ERROR"}


@dataclass(frozen=True)
class Thumbnail:
    data_uri: str | None  # data:image/jpeg;base64,... or None for the placeholder
    note: str = ""  # why there is no picture, shown on the placeholder


def write(results: list[Result], path: str | Path, *, policy: Policy) -> None:
    """Write `results` as one self-contained HTML page at `path`, atomically."""
    with ThreadPoolExecutor(max_workers=THUMB_WORKERS) as pool:
        thumbnails = list(pool.map(grab_thumbnail, results))
    page = render(results, policy, thumbnails)
    # backslashreplace: an undecodable file name is shown escaped rather than failing the report.
    write_atomically(Path(path), page.encode("utf-8", "backslashreplace"))


def grab_thumbnail(result: Result) -> Thumbnail:
    """A JPEG of the frame in the middle of a local video, or a placeholder saying why not."""
    facts = result.facts
    if is_url(result.source):
        return Thumbnail(None, "no preview for a URL")
    if facts is None or facts.video_tracks == 0 or not facts.width:
        return Thumbnail(None, "no video to preview")
    path = Path(result.source)
    if not path.is_file() or not os.access(path, os.R_OK):
        return Thumbnail(None, "file not readable")
    executable = shutil.which("ffmpeg")
    if executable is None:
        return Thumbnail(None, "no preview: ffmpeg not found")
    middle_s = (facts.duration or 0.0) / 2
    width, height = THUMB_BOX
    # "file:" keeps ffmpeg from reading a name like "concat:a|b" or "http:..." as a protocol;
    # "scale=iw*sar" first so that anamorphic video is shown with its display shape.
    args = (
        ffmpeg.input(f"file:{path.resolve()}", ss=f"{middle_s:.3f}")
        .video.filter("scale", "iw*sar", "ih")
        .filter("scale", width, height, force_original_aspect_ratio="decrease")
        .output("pipe:", vframes=1, format="image2", vcodec="mjpeg", **{"q:v": 4})
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd=executable)
    )
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=THUMB_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Thumbnail(None, f"no preview: ffmpeg took over {THUMB_TIMEOUT_S:g} s")
    except OSError:
        return Thumbnail(None, "no preview: ffmpeg could not run")
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        return Thumbnail(None, "no preview: ffmpeg could not decode a frame")
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(done.stdout).decode("ascii"))


def render(results: list[Result], policy: Policy, thumbnails: list[Thumbnail]) -> str:
    """The whole page as a string; `thumbnails` has one entry per result, in order."""
    counts = {v: sum(1 for r in results if r.verdict == v) for v in VERDICT_WORDS}
    title = f"preflight: {len(results)} file{'s' * (len(results) != 1)}, policy {policy.name}"
    cards = "\n".join(
        _card(index, result, thumbnail, policy)
        for index, (result, thumbnail) in enumerate(zip(results, thumbnails, strict=True))
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
{_summary(results, counts, policy)}
{cards}
</main>
</body>
</html>
"""


def _summary(results: list[Result], counts: dict[str, int], policy: Policy) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tiles = "".join(
        f'<div class="count v-{v}{" none" * (counts[v] == 0)}"><span class="n">{counts[v]}</span>'
        f'<span class="word">{word}</span></div>'
        for v, word in VERDICT_WORDS.items()
    )
    limits = [
        ("Container", ", ".join(c.upper() for c in policy.containers)),
        ("Duration", _windows_text(policy)),
        ("Width", f"{policy.width_px[0]}–{policy.width_px[1]} px"),
        ("Height", f"{policy.height_px[0]}–{policy.height_px[1]} px"),
        ("Frame rate", _rates_text(policy)),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in limits)
    index = "".join(
        f'<li><a href="#source-{i}"><span class="dot v-{escape(r.verdict)}"></span>'
        f"{escape(r.source)}</a></li>"
        for i, r in enumerate(results)
    )
    return f"""<header class="summary">
<h1>Pre-flight report</h1>
<p class="meta">{len(results)} checked against policy <strong>{escape(policy.name)}</strong>
 (Kling init-selection limits) · {escape(when)}</p>
<div class="summary-grid">
<div class="counts">{tiles}</div>
<table class="limits"><caption>Limits, inclusive</caption>{rows}</table>
</div>
<nav><ol class="index">{index}</ol></nav>
</header>"""


def _card(index: int, result: Result, thumbnail: Thumbnail, policy: Policy) -> str:
    verdict = result.verdict if result.verdict in VERDICT_WORDS else "error"
    if thumbnail.data_uri:
        picture = (
            f'<img class="thumb" src="{thumbnail.data_uri}" '
            f'alt="{escape("the frame in the middle of " + result.source)}">'
        )
    else:
        size = " small" if result.facts is None else ""  # an unreadable file: no big empty frame
        note = escape(thumbnail.note)
        picture = f'<div class="thumb placeholder{size}"><span>{note}</span></div>'
    body = []
    if result.facts is not None:
        body.append(f'<p class="facts">{escape(_facts_text(result.facts))}</p>')
    if result.remote is not None:
        remote = result.remote
        of = f" of {remote.size_bytes}" if remote.size_bytes is not None else ""
        line = f"read {remote.transfer.bytes}{of} bytes in {remote.transfer.requests} request(s)"
        if remote.final_url and remote.final_url != result.source:
            line += f" from {remote.final_url}"
        body.append(f'<p class="remote">{escape(line)}</p>')
    if result.error is not None:
        body.append(
            f'<div class="problem error"><code class="rule">{escape(result.error.kind)}</code> '
            f"{escape(result.error.message)}</div>"
        )
    if result.violations:
        body.append(_problems("Fix before sending", result.violations, "reject"))
    if result.warnings:
        body.append(_problems("Warnings (accepted)", result.warnings, "warn"))
    if result.disagreements:
        items = "".join(
            f"<li><code>{escape(d.field)}</code>: MediaInfo {escape(repr(d.mediainfo))}, "
            f"ffprobe {escape(repr(d.ffprobe))}</li>"
            for d in result.disagreements
        )
        body.append(f'<div class="disagree"><h3>Backends disagree</h3><ul>{items}</ul></div>')
    if verdict == "pass" and not result.warnings:
        body.append(f'<p class="ok">Within every limit of policy {escape(policy.name)}.</p>')
    charts = _charts(result.facts, policy) if result.facts and result.facts.video_tracks else ""
    return f"""<article class="card v-{verdict}" id="source-{index}" data-verdict="{verdict}"
 data-source="{escape(result.source)}">
<header class="card-head"><span class="badge v-{verdict}">{VERDICT_WORDS[verdict]}</span>
<h2 class="source">{escape(result.source)}</h2></header>
<div class="card-body">{picture}<div class="details">{"".join(body)}</div></div>
{charts}
</article>"""


def _problems(heading: str, problems: list[Violation], kind: str) -> str:
    items = []
    for problem in problems:
        fix = (
            '<div class="fix"><span class="fix-label">Fix</span>'
            f"<code>{escape(problem.hint)}</code></div>"
            if problem.hint
            else ""
        )
        items.append(
            f'<li class="problem {kind}"><code class="rule">{escape(problem.rule)}</code> '
            f"{escape(problem.message)}{fix}</li>"
        )
    return f'<section class="problems {kind}"><h3>{heading}</h3><ul>{"".join(items)}</ul></section>'


def _facts_text(facts: Facts) -> str:
    parts = [facts.container.upper() + (f" · {facts.video_codec}" if facts.video_codec else "")]
    if facts.width and facts.height:
        parts.append(f"{facts.width}×{facts.height}")
    if facts.fps is not None:
        exact = f" ({facts.fps_exact})" if facts.fps_exact and "/1001" in facts.fps_exact else ""
        parts.append(f"{_number(facts.fps)} fps{exact}")
    if facts.duration is not None:
        parts.append(f"{facts.duration:.3f} s")
    if facts.frame_count is not None:
        parts.append(f"{facts.frame_count} frames")
    if facts.rotation:
        parts.append(f"rotated {facts.rotation}°")
    if facts.size_bytes:
        parts.append(_size(facts.size_bytes))
    return " · ".join(parts)


def _size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _windows_text(policy: Policy) -> str:
    return " or ".join(f"{lo:g}–{hi:g} s" for lo, hi in policy.duration_windows)


def _rates_text(policy: Policy) -> str:
    rates = ", ".join(f"{r:g}" for r in policy.fps_allowed)
    return f"{rates} fps (±{policy.fps_tolerance:g})"


# The three pictures. Each is an SVG drawn in its own units (viewBox) and sized by CSS; colours
# come from the page's classes, so pass/reject read the same everywhere on the page.


def _charts(facts: Facts, policy: Policy) -> str:
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
    return f"{value}; allowed {_windows_text(policy)}"


def _size_caption(facts: Facts, policy: Policy) -> str:
    value = f"{facts.width}×{facts.height}" if facts.width and facts.height else "unknown"
    if policy.width_px == policy.height_px:
        allowed = f"each side {policy.width_px[0]}–{policy.width_px[1]} px"
    else:
        allowed = f"width {policy.width_px[0]}–{policy.width_px[1]}, height "
        allowed += f"{policy.height_px[0]}–{policy.height_px[1]} px"
    return f"{value}; allowed {allowed}"


def _fps_caption(facts: Facts, policy: Policy) -> str:
    value = "unknown" if facts.fps is None else f"{_number(facts.fps)} fps"
    return f"{value}; allowed {_rates_text(policy)}"


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
        parts.append(_marker(x(duration), axis_y, f"{_number(duration)} s", fit, left, right))
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
        parts.append(_marker(x(fps), axis_y, f"{_number(fps)} fps", fit, left, right))
    return _svg(280, 66, "frame rate against the allowed rates", "".join(parts))


_CSS = """
:root {
  --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --page: #f6f8fa; --card: #fff;
  --pass: #1a7f37; --pass-bg: #dafbe1; --reject: #cf222e; --reject-bg: #ffebe9;
  --error: #8250df; --error-bg: #fbefff; --warn: #9a6700; --warn-bg: #fff8c5;
  --zone: #c9f0d3; --zone-strong: #2da44e;
}
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body {
  margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif;
}
main { max-width: 1000px; margin: 0 auto; padding: 32px 24px 56px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2, h3 { margin: 0; }
code { font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
  monospace; }
.meta { margin: 0 0 20px; color: var(--muted); }
.summary { margin-bottom: 28px; }
.summary-grid { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.counts { display: flex; gap: 12px; }
.count {
  min-width: 104px; padding: 12px 16px; border-radius: 10px; background: var(--card);
  border: 1px solid var(--line); border-top: 4px solid var(--c); text-align: center;
}
.count .n { display: block; font-size: 32px; font-weight: 700; line-height: 1.1; color: var(--c); }
.count.none { border-top-color: var(--line); }
.count.none .n { color: var(--line); }
.count .word { font-size: 12px; font-weight: 700; letter-spacing: 0.08em; color: var(--muted); }
.limits {
  border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; font-size: 14px; flex: 1; min-width: 300px;
}
.limits caption {
  text-align: left; font-size: 12px; font-weight: 700; letter-spacing: 0.08em;
  text-transform: uppercase; color: var(--muted); padding: 0 0 6px;
}
.limits th, .limits td { text-align: left; padding: 5px 14px; border-top: 1px solid var(--line); }
.limits tr:first-child th, .limits tr:first-child td { border-top: 0; }
.limits th { font-weight: 600; color: var(--muted); white-space: nowrap; }
.index {
  list-style: none; padding: 0; margin: 20px 0 0; columns: 2 300px; column-gap: 24px;
  font-size: 14px;
}
.index li { break-inside: avoid; padding: 1px 0; overflow-wrap: anywhere; }
.index a { color: var(--ink); text-decoration: none; }
.index a:hover { text-decoration: underline; }
.dot {
  display: inline-block; width: 9px; height: 9px; border-radius: 50%; background: var(--c);
  margin-right: 8px; vertical-align: 1px;
}
.v-pass { --c: var(--pass); --c-bg: var(--pass-bg); }
.v-reject { --c: var(--reject); --c-bg: var(--reject-bg); }
.v-error { --c: var(--error); --c-bg: var(--error-bg); }
.card {
  background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--c);
  border-radius: 10px; padding: 18px 22px 16px; margin: 0 0 18px; break-inside: avoid;
}
.card-head { display: flex; align-items: center; gap: 12px; margin-bottom: 14px; }
.badge {
  flex: none; color: #fff; background: var(--c); font-size: 12px; font-weight: 700;
  letter-spacing: 0.08em; padding: 3px 10px; border-radius: 999px;
}
.source { font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
.card-body { display: flex; gap: 20px; align-items: flex-start; }
.thumb {
  flex: none; width: 288px; height: 162px; object-fit: contain; background: #e6e9ed;
  border-radius: 6px; border: 1px solid var(--line);
}
.placeholder {
  display: flex; align-items: center; justify-content: center; padding: 16px;
  text-align: center; color: var(--muted); font-size: 13px;
  background: repeating-linear-gradient(135deg, #eceff2 0 10px, #e4e7eb 10px 20px);
}
.placeholder.small { height: 72px; }
.details { flex: 1; min-width: 0; }
.facts { margin: 0 0 10px; font-weight: 500; }
.remote { margin: -6px 0 10px; color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
.ok { margin: 0; color: var(--pass); font-weight: 600; }
.problems { margin: 0 0 10px; }
.problems h3, .disagree h3 {
  font-size: 12px; font-weight: 700; letter-spacing: 0.08em; text-transform: uppercase;
  color: var(--muted); margin-bottom: 6px;
}
.problems ul, .disagree ul { list-style: none; margin: 0; padding: 0; }
.problem {
  padding: 8px 12px; border-radius: 6px; margin-bottom: 6px; overflow-wrap: anywhere;
  background: var(--reject-bg); border-left: 3px solid var(--reject);
}
.problem.warn { background: var(--warn-bg); border-left-color: var(--warn); }
.problem.error {
  background: var(--error-bg); border-left-color: var(--error); margin-bottom: 10px;
}
.rule { font-weight: 700; margin-right: 4px; }
.fix { display: flex; gap: 8px; align-items: baseline; margin-top: 4px; }
.fix-label {
  flex: none; font-size: 11px; font-weight: 700; letter-spacing: 0.08em; text-transform: uppercase;
  color: var(--muted);
}
.fix code {
  background: rgba(255, 255, 255, 0.7); padding: 1px 6px; border-radius: 4px;
  white-space: pre-wrap; overflow-wrap: anywhere;
}
.disagree { font-size: 13px; color: var(--muted); }
.charts {
  display: flex; flex-wrap: wrap; gap: 8px 28px; margin-top: 14px; padding-top: 12px;
  border-top: 1px solid var(--line);
}
.chart { margin: 0; }
.chart-name {
  font-size: 11px; font-weight: 700; letter-spacing: 0.08em; text-transform: uppercase;
  color: var(--muted);
}
.chart figcaption { font-size: 12px; color: var(--muted); max-width: 280px; }
.plot { display: block; overflow: visible; }
.plot text { font-size: 10px; fill: var(--muted); text-anchor: middle; font-family: inherit; }
.plot text.end { text-anchor: end; }
.plot text.dim { font-size: 9.5px; letter-spacing: 0.04em; }
.plot text.allowed { fill: var(--pass); font-weight: 700; }
.plot .axis, .plot .tick { stroke: #8c959f; stroke-width: 1; }
.plot .frame { fill: none; stroke: #8c959f; }
.plot .zone { fill: var(--zone); stroke: var(--zone-strong); stroke-width: 0.75; }
.plot .zone-strong { fill: var(--zone-strong); }
.plot .mark line { stroke-width: 2; }
.plot .mark text { font-weight: 700; font-size: 11px; }
.plot .mark.in line, .plot .mark.in circle { stroke: var(--pass); fill: var(--pass); }
.plot .mark.in text { fill: var(--pass); }
.plot .mark.out line, .plot .mark.out circle { stroke: var(--reject); fill: var(--reject); }
.plot .mark.out text { fill: var(--reject); }
@media (max-width: 640px) { .card-body { flex-direction: column; } }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  .card { border-color: #bbb; }
}
"""
