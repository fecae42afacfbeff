"""The HTML report pictures what a player shows (issue 22, item 4): a phone clip rotated by its
display matrix is upright, and a fade-in shows its first keyframe that is not black.

Real clips made by ffmpeg with an asymmetric picture (red top, blue bottom); the real console
script writes the report; the JPEGs are decoded back with PyAV and compared with what ffmpeg
itself shows (its autorotate is what players do).
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path

import av
import pytest

from .conftest import run_cli

HALVES = "color=blue:s=1280x720:r=30:d=2[b];color=red:s=1280x360:r=30:d=2[r];[b][r]overlay=0:0"


def _halves(rgb: bytes, width: int, height: int) -> dict[str, str]:
    """Which colour dominates each half (left, right, top, bottom) of an RGB24 picture."""

    def colour(pixels: list[tuple[int, int, int]]) -> str:
        red = sum(p[0] for p in pixels)
        blue = sum(p[2] for p in pixels)
        return "red" if red > 2 * blue else "blue" if blue > 2 * red else "mixed"

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        i = (y * width + x) * 3
        return rgb[i], rgb[i + 1], rgb[i + 2]

    every = [(x, y) for y in range(height) for x in range(width)]
    return {
        "left": colour([pixel(x, y) for x, y in every if x < width // 2 - 2]),
        "right": colour([pixel(x, y) for x, y in every if x > width // 2 + 2]),
        "top": colour([pixel(x, y) for x, y in every if y < height // 2 - 2]),
        "bottom": colour([pixel(x, y) for x, y in every if y > height // 2 + 2]),
    }


def _decoded(jpeg: bytes) -> tuple[int, int, bytes]:
    with av.open(io.BytesIO(jpeg), "r") as container:
        frame = next(container.decode(video=0))
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    data = bytes(plane)
    rows = [
        data[r * plane.line_size : r * plane.line_size + rgb.width * 3] for r in range(rgb.height)
    ]
    return rgb.width, rgb.height, b"".join(rows)


def _as_ffmpeg_shows(ffmpeg: str, clip: Path, width: int, height: int) -> bytes:
    """The first frame as ffmpeg presents it (autorotate on, as in a player), at this size."""
    done = subprocess.run(
        [ffmpeg, "-v", "error", "-i", f"file:{clip}", "-frames:v", "1", "-vf",
         f"scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def _report_pictures(tmp_path: Path, *clips: Path) -> list[bytes]:
    page = tmp_path / "report.html"
    done = run_cli("check", "--no-cache", "--html", str(page), *map(str, clips))
    assert "Traceback" not in done.stderr, done.stderr
    found = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page.read_text())
    assert len(found) == len(clips), "a clip has no picture"
    return [base64.b64decode(x) for x in found]


@pytest.fixture(scope="module")
def clips(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    here = tmp_path_factory.mktemp("shown")
    upright = here / "upright.mp4"
    x264 = ["-c:v", "libx264", "-preset", "ultrafast"]
    subprocess.run([ffmpeg, "-v", "error", "-y", "-filter_complex", f"{HALVES},format=yuv420p",
                    *x264, str(upright)], check=True)  # fmt: skip
    made = {"upright": upright}
    for degrees in (90, 270, 180):  # the display matrix only; the coded picture is the same
        out = here / f"rotate_{degrees}.mp4"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(upright), "-c", "copy",
                        "-metadata:s:v:0", f"rotate={degrees}", str(out)], check=True)  # fmt: skip
        made[f"rotate_{degrees}"] = out
    fade = here / "fade_in.mp4"
    # One second of fade from black, a keyframe every half second: the first keyframe is black.
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=1280x720:r=30:d=3,fade=in:0:30,format=yuv420p",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", str(fade)],
                   check=True)  # fmt: skip
    made["fade_in"] = fade
    return made


def test_a_rotated_clip_is_pictured_upright(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    names = ["upright", "rotate_90", "rotate_270", "rotate_180"]
    pictures = _report_pictures(tmp_path, *(clips[n] for n in names))
    seen = set()
    for name, jpeg in zip(names, pictures, strict=True):
        width, height, rgb = _decoded(jpeg)
        expected = _as_ffmpeg_shows(ffmpeg, clips[name], width, height)
        shown, player = _halves(rgb, width, height), _halves(expected, width, height)
        assert shown == player, (name, shown, player)
        if name in ("rotate_90", "rotate_270"):
            assert height > width, (name, width, height)  # portrait, as the phone was held
        seen.add(tuple(sorted(shown.items())))
    assert len(seen) == 4  # the four orientations are four different pictures


def _mean_luma(rgb: bytes) -> float:
    return sum(rgb) / len(rgb)


def test_a_fade_in_is_pictured_by_its_first_lit_keyframe(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    (jpeg,) = _report_pictures(tmp_path, clips["fade_in"])
    width, height, rgb = _decoded(jpeg)
    first = _as_ffmpeg_shows(ffmpeg, clips["fade_in"], width, height)
    assert _mean_luma(first) < 5  # the clip does start black (the test's own premise)
    assert _mean_luma(rgb) > 30, _mean_luma(rgb)
