"""How each decoded frame becomes an output frame, for the encode (graph.py) and for the quality
reference (measure.py) alike: an alpha channel composited over grey, then each frame scaled into
the output keeping its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .plan import Plan


@dataclass(frozen=True)
class Picture:
    """How each decoded frame becomes an output frame, for the encode and for the quality
    reference alike: the alpha flattened, then scaled keeping each frame's own shape.

    A frame shaped like the planned source frame is scaled to `size` exactly; a frame of another
    shape (WebM may change size midway) is fitted inside `box` and padded (pillar- or
    letterboxed), never squashed. eval=frame re-evaluates both per frame, so one filter graph
    (without -reinit_filter) serves the whole stream and the timestamps are never reset.
    """

    frame: tuple[int, int]
    size: tuple[int, int]
    box: tuple[int, int]
    flatten_alpha: bool = False
    ten_bit: bool = False
    square: bool = True  # setsar=1: scaling 1280x718 to 1284x720 would leave pixels 38400:38413

    @classmethod
    def of(cls, plan: Plan) -> Picture | None:
        if plan.frame is None:
            return None
        size = plan.size or plan.frame
        return cls(
            plan.frame,
            size,
            plan.padded or size,
            plan.flatten_alpha,
            plan.pix_fmt != "yuv420p",
            plan.square_pixels,
        )

    def flatten(self, stream: Any) -> Any:
        """The alpha composited over mid grey: split, a grey copy (drawbox fills it, opaque),
        the picture overlaid on it. (geq did it per pixel in one filter, at 5 s a second of
        720p.)"""
        if not self.flatten_alpha:
            return stream
        import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

        fmt, blend = ("yuva444p10le", "yuv444p10") if self.ten_bit else ("yuva444p", "yuv444")
        split = stream.filter("format", pix_fmts=fmt).split()
        top, below = split[0], split[1]
        grey = below.filter("drawbox", **_GREY_FILL)
        return ffmpeg.overlay(grey, top, format=blend)

    def flatten_text(self, into: str, out: str) -> str:
        """The same composite as -filter_complex text, from label `into` to label `out`."""
        if not self.flatten_alpha:
            return f"[{into}]null[{out}]"
        fmt, blend = ("yuva444p10le", "yuv444p10") if self.ten_bit else ("yuva444p", "yuv444")
        grey = ":".join(f"{key}={value}" for key, value in _GREY_FILL.items())
        return (
            f"[{into}]format={fmt},split[{out}_top][{out}_below];"
            f"[{out}_below]drawbox={grey}[{out}_grey];"
            f"[{out}_grey][{out}_top]overlay=format={blend}[{out}]"
        )

    def fit(self) -> list[tuple[str, dict[str, str]]]:
        (fw, fh), (sw, sh), (pw, ph) = self.frame, self.size, self.box
        same = f"lt(abs(iw*{fh}/(ih*{fw})-1),0.01)"
        wider = f"gt(iw*{ph},ih*{pw})"
        width = f"if({same},{sw},if({wider},{pw},2*floor({ph}*iw/ih/2)))"
        height = f"if({same},{sh},if({wider},2*floor({pw}*ih/iw/2),{ph}))"
        return [
            ("scale", {"w": width, "h": height, "eval": "frame"}),
            (
                "pad",
                {"w": str(pw), "h": str(ph), "x": "(ow-iw)/2", "y": "(oh-ih)/2", "eval": "frame"},
            ),
            *([("setsar", {"sar": "1"})] if self.square else []),
        ]


# Transparent areas become this (plan.keep.ALPHA_BACKGROUND_NAME): black would hide black text.
_GREY_FILL = {
    "x": "0",
    "y": "0",
    "w": "iw",
    "h": "ih",
    "color": "0x808080",
    "t": "fill",
    "replace": "1",
}


def lavfi(filters: list[tuple[str, dict[str, str]]]) -> str:
    """Filters as -filter_complex text, each value quoted (expressions hold commas)."""
    return ",".join(
        name + "=" + ":".join(f"{key}='{value}'" for key, value in options.items())
        for name, options in filters
    )


def apply(stream: Any, filters: list[tuple[str, dict[str, str]]]) -> Any:
    for name, options in filters:
        stream = stream.filter(name, **options)
    return stream
