"""A step of a fix plan, as the result reports it: what was done, for which rule, whether every
packet it touched stayed the source's, in words a person reads, and the ffmpeg command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Step:
    action: str  # remux, faststart, retime, retime_audio, convert_fps, cut, extend, scale, pad, ...
    rule: str  # the rule or warning id it answers
    lossless: bool  # True: the step leaves every packet it touches byte-identical
    detail: str  # one line for a person
    command: str = ""  # the ffmpeg command line(s) that carry it out, set when the pass is built

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "rule": self.rule,
            "lossless": self.lossless,
            "detail": self.detail,
            "command": self.command,
        }


_REENCODED_DETAIL = {
    "remux": "rewrite as MP4 (the video is re-encoded in the same run)",
    "faststart": "index (moov) before the media data, in the re-encoded file",
}


def reencoded(step: Step) -> Step:
    """A step carried out by the re-encode: not lossless, and its words no longer promise so."""
    if step.action in {"transcode_audio", "retime_audio"}:
        return step
    detail = _REENCODED_DETAIL.get(step.action, step.detail)
    if step.action == "retime":
        detail = step.detail.replace(
            "by rescaling timestamps: every video packet stays,", "re-timed in the re-encode:"
        )
    if step.action == "cut":
        detail = step.detail.split(" (")[0] + " (exact cut, re-encoded)"
    return replace(step, lossless=False, detail=detail)
