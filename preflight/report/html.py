"""The HTML report for editors: a summary of the limits, then a card per source with a thumbnail,
its verdict, each problem with its fix, and three small pictures of where it sits in the limits.

One self-contained file: inline CSS and SVG, thumbnails as data: URIs, so it opens offline.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from ..facts import Facts
from ..policy import Policy
from ..probing.worker import MAX_IDLE
from ..verdict import Result, Violation
from .atomic import write_atomically
from .html_charts import draw_charts, number_text, rates_text, windows_text
from .printable import printable
from .thumbnails import JPEG_PREFIX, Thumbnail, grab_frame

if TYPE_CHECKING:
    from ..cache import ThumbnailCache

# The thumbnail fits inside this, aspect kept (portrait clips stay upright): small enough that a
# JPEG stays under 8 KiB (a 1,000-file page is ~7.8 MB, most of it the cards' SVG charts).
THUMB_BOX = (192, 192)
THUMB_TIMEOUT_S = 20.0  # per file: a damaged file must not hang the report
# One decoding worker per core: each decodes on one thread, and the work is all CPU. At most as
# many as the pool keeps warm, or workers would be started and stopped between files.
THUMB_WORKERS = min(MAX_IDLE, max(2, os.cpu_count() or 2))
VERDICT_WORDS = {"pass": "PASS", "reject": "REJECT", "error": "ERROR"}


def write(
    results: list[Result],
    path: str | Path,
    *,
    policy: Policy,
    thumbnails: ThumbnailCache | None = None,
) -> None:
    """Write `results` as one self-contained HTML page at `path`, atomically.

    With `thumbnails` (the probe cache's), pictures already taken are read from it, not decoded,
    and new ones are kept there.
    """
    page = render(results, policy, grab_thumbnails(results, thumbnails))
    # printable: an undecodable file-name byte is shown as \xff rather than failing the report.
    write_atomically(Path(path), printable(page).encode("utf-8"))


# Kept thumbnails carry the picture's version: those of older preflights (the first keyframe,
# sideways for a rotated clip, black for a fade-in) are taken again, not shown. Not base64.
CACHED_AS = "upright-lit:"


def grab_thumbnails(results: list[Result], cache: ThumbnailCache | None = None) -> list[Thumbnail]:
    """One thumbnail per result, in order: from `cache` when it has it, else decoded in parallel."""
    kept: dict[str, str] = {}
    if cache is not None:
        for result in results:
            if result.facts is not None and result.facts.video_tracks:
                jpeg = cache.get(result.source)
                if jpeg is not None and jpeg.startswith(CACHED_AS):
                    kept[result.source] = jpeg.removeprefix(CACHED_AS)

    def one(result: Result) -> Thumbnail:
        if result.source in kept:
            return Thumbnail(JPEG_PREFIX + kept[result.source])
        return grab_thumbnail(result)

    with ThreadPoolExecutor(max_workers=THUMB_WORKERS) as pool:
        thumbnails = list(pool.map(one, results))
    if cache is not None:
        cache.put_many(
            [
                (result.source, CACHED_AS + thumbnail.data_uri.removeprefix(JPEG_PREFIX))
                for result, thumbnail in zip(results, thumbnails, strict=True)
                if thumbnail.data_uri and result.source not in kept
            ]
        )
    return thumbnails


def grab_thumbnail(result: Result) -> Thumbnail:
    """A JPEG of the first keyframe of a local video, or a placeholder saying why not."""
    # The settings are read here, at call time, so that they can be changed on this module.
    return grab_frame(result, box=THUMB_BOX, timeout_s=THUMB_TIMEOUT_S)


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
        ("Duration", windows_text(policy)),
        ("Width", f"{policy.width_px[0]}–{policy.width_px[1]} px"),
        ("Height", f"{policy.height_px[0]}–{policy.height_px[1]} px"),
        ("Frame rate", rates_text(policy)),
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
            f'alt="{escape("the first frame of " + result.source)}">'
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
    charts = draw_charts(result.facts, policy) if result.facts and result.facts.video_tracks else ""
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
        parts.append(f"{number_text(facts.fps)} fps{exact}")
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
  flex: none; width: 192px; height: 108px; object-fit: contain; background: #e6e9ed;
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
