"""How fix results are shown: a plan with marks and before → after for people, JSON for scripts.

The JSON shapes are the contract in schemas/fix.schema.json.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..report.printable import shown
from .deps import Result
from .result import STATUSES, FixResult, Written

_LABEL = {
    "fixed": "FIXED",
    "nothing_to_fix": "OK",
    "planned": "PLAN",
    "unfixable": "UNFIXABLE",
    "error": "ERROR",
    "skipped": "SKIPPED",
}


def describe(result: Result | None) -> str:
    """`REJECT 29.97 fps, 1280×720, 9.218 s` — the facts a fix changes, after the verdict."""
    if result is None:
        return "nothing written"
    facts = result.facts
    if facts is None:
        return result.verdict.upper()
    parts = []
    if facts.fps is not None:
        parts.append(f"{facts.fps:.3f}".rstrip("0").rstrip(".") + " fps")
    if facts.width and facts.height:
        parts.append(f"{facts.width}×{facts.height}")
    if facts.duration is not None:
        parts.append(f"{facts.duration:.3f} s")
    parts.append(facts.container.upper())
    return f"{result.verdict.upper()} {', '.join(parts)}"


def write_text(result: FixResult, stream: IO[str]) -> None:
    label = _LABEL[result.status]
    head = f"{label:<9} {result.source}"
    if result.status == "fixed" or result.status == "planned":
        head += f" → {result.output}"
    if result.status == "planned":
        head += "  (dry run: nothing written)"
    lines = [head]
    for step in result.steps:
        mark = "lossless" if step.lossless else "re-encode"
        lines.append(f"  [{mark}] {step.action} ({step.rule}): {step.detail}")
        if result.status == "planned":
            lines.append(f"      $ {step.command}")
    lines.extend(f"  note: {note}" for note in result.notes)
    lines.extend(
        f"  dropped: stream {d.index} ({d.kind}, {d.codec}): {d.why}" for d in result.dropped
    )
    if result.status == "fixed":
        tail = f"  {describe(result.before)} → {describe(result.after)}"
        tail += ", lossless" if result.lossless else ""
        if result.ssim is not None:
            tail += f", {scores(result)} against the source"
        lines.append(tail)
        if result.written is not None:
            lines.append(f"  wrote {written(result.written)}; {result.elapsed_ms / 1000:.1f} s")
    elif result.status == "nothing_to_fix":
        lines[0] += f": nothing to fix ({describe(result.before)})"
    elif result.status == "unfixable":
        lines.append(f"  {describe(result.before)}: cannot be made to pass: {result.reason}")
        if result.after is not None and result.after.violations:
            rules = ", ".join(v.rule for v in result.after.violations)
            lines.append(f"  the last try still broke: {rules} (nothing written)")
    elif result.status == "skipped":
        lines[0] += f": {result.reason}"
    elif result.status == "error":
        kind = result.before.error.kind if result.before.error else "unreadable"
        lines[0] += f": {kind}: {result.reason}"
    # shown: a newline in a name must not print a line of its own (a fake FIXED), nor ESC
    # reach the terminal, nor a name that is not UTF-8 raise on a strict stream.
    stream.write("\n".join(shown(line) for line in lines) + "\n")


def scores(result: FixResult) -> str:
    """`SSIM 0.9952, VMAF 97.31` (VMAF left out when this ffmpeg has no libvmaf)."""
    text = f"SSIM {result.ssim:.4f}" if result.ssim is not None else ""
    if result.vmaf is not None:
        text += f", VMAF {result.vmaf:.2f}"
    return text


def written(info: Written) -> str:
    """`3.6 MB: h264 High, 8-bit, 1284×720, aac audio` — what an editor asks of the output."""
    video = " ".join(part for part in (info.video_codec, info.profile) if part)
    audio = f"{info.audio_codec} audio" if info.audio_codec else "no audio"
    size = f", {info.width}×{info.height}" if info.width and info.height else ""
    amount = (
        f"{info.size_bytes / 1e6:.1f} MB"
        if info.size_bytes >= 100_000
        else f"{info.size_bytes / 1e3:.0f} kB"
    )
    return f"{amount}: {video}, {info.bit_depth}-bit{size}, {audio}"


def summarize(results: list[FixResult], *, policy: str, exit_code: int) -> dict[str, Any]:
    counts = {status: sum(1 for r in results if r.status == status) for status in STATUSES}
    return {"total": len(results), **counts, "policy": policy, "exit_code": exit_code}


def write_summary(summary: dict[str, Any], stream: IO[str]) -> None:
    if summary["total"] < 2:
        return
    parts = [f"{summary[s]} {s.replace('_', ' ')}" for s in STATUSES if summary[s]]
    stream.write(f"{summary['total']} sources: {', '.join(parts)}\n")


def write_json(results: list[FixResult], summary: dict[str, Any], stream: IO[str]) -> None:
    document = {"results": [r.to_dict() for r in results], "summary": summary}
    stream.write(json.dumps(document, indent=2) + "\n")


def write_json_line(result: FixResult, stream: IO[str]) -> None:
    stream.write(json.dumps(result.to_dict()) + "\n")
    stream.flush()
