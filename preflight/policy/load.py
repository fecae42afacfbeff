"""Loading a policy: read the JSON (a shipped profile or a house file), follow `extends`, validate
a house file against policy.schema.json, and build the typed Policy the rules read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PolicyError
from ..schemas import load_schema

if TYPE_CHECKING:
    from pathlib import Path

PROFILES = ("cometapi", "kling")
DEFAULT_PROFILE = "cometapi"
# A real policy is under 2 KiB; a thousand times that is still generous, and keeps a file that is
# not a policy (a video named by mistake, a device) from being read whole into memory.
MAX_POLICY_BYTES = 1024 * 1024
_SHOWN_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Policy:
    name: str
    containers: tuple[str, ...]
    duration_windows: tuple[tuple[float, float], ...]
    width_px: tuple[int, int]
    height_px: tuple[int, int]
    fps_allowed: tuple[float, ...]
    fps_tolerance: float
    fps_average_tolerance: float
    container_duration_tolerance_s: float
    disabled_warnings: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "containers": list(self.containers),
            "duration_s": [{"min": lo, "max": hi} for lo, hi in self.duration_windows],
            "width_px": {"min": self.width_px[0], "max": self.width_px[1]},
            "height_px": {"min": self.height_px[0], "max": self.height_px[1]},
            "fps": {"allowed": list(self.fps_allowed), "tolerance": self.fps_tolerance},
            "warnings": {
                "fps_average_tolerance": self.fps_average_tolerance,
                "container_duration_tolerance_s": self.container_duration_tolerance_s,
                "disabled": sorted(self.disabled_warnings),
            },
        }


def load_policy(path: str | Path | None = None, *, profile: str | None = None) -> Policy:
    """Load a house policy file, or a shipped profile (default: cometapi)."""
    if path is not None:
        from pathlib import Path  # a house file only: a profile needs no pathlib

        where = str(path)
        try:
            raw = _read_json(Path(path))
            return _build(_resolve(raw, where, seen=()), where)
        except RecursionError:
            # json.loads, the schema check and the merge all recurse per level of nesting: a
            # file nested thousands deep is refused here, not as a traceback.
            raise PolicyError(f"policy file {where} is nested too deeply") from None
    name = profile or DEFAULT_PROFILE
    if name not in PROFILES:
        raise PolicyError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    where = f"profile {name}"
    return _build(_resolve(load_schema(f"policy.{name}.json"), where, seen=()), where)


def load_policy_data(raw: dict[str, Any], where: str) -> Policy:
    """A house policy already parsed (a pyproject.toml table): validated and built as a file is."""
    try:
        return _build(_resolve(raw, where, seen=()), where)
    except RecursionError:
        raise PolicyError(f"{where} is nested too deeply") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            # Read one byte past the cap: enough to know a file is too big without reading all
            # of it (a policy named as /dev/zero or a FIFO that never ends must not fill memory).
            content = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {path}") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    if len(content) > MAX_POLICY_BYTES:
        raise PolicyError(
            f"policy file {path} is over {MAX_POLICY_BYTES // 1024 // 1024} MiB: not a policy"
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path} is not UTF-8 text: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a JSON object")
    return data


def _resolve(raw: dict[str, Any], where: str, seen: tuple[str, ...]) -> dict[str, Any]:
    # Shipped profiles are validated by the test suite; a house file is validated here. This
    # keeps jsonschema (~45 ms to import) off the path of a cached `check` with a profile.
    if not where.startswith("profile "):
        _validate_policy(raw, where)
    base_name = raw.get("extends")
    if base_name is None:
        return raw
    if base_name not in PROFILES or base_name in seen:
        raise PolicyError(
            f"{where}: 'extends' must name a shipped profile ({', '.join(PROFILES)})"
            " and must not loop"
        )
    base = _resolve(
        load_schema(f"policy.{base_name}.json"), f"profile {base_name}", (*seen, base_name)
    )
    merged = {**base, **{k: v for k, v in raw.items() if k != "extends"}}
    # Its own limits, its own label: a file without a "name" is named by where it came from, as
    # one that extends nothing is, never by the profile it started from (issue 22, item 8).
    merged["name"] = raw.get("name", where)
    for key in ("fps", "warnings"):  # objects merge key by key, so a file can change one tolerance
        if key in raw and key in base:
            merged[key] = {**base[key], **raw[key]}
    return merged


def _validate_policy(raw: dict[str, Any], where: str) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    # Python's JSON and TOML readers take NaN, Infinity and 1e400 (which overflows to inf), and a
    # schema cannot refuse NaN (every comparison with it is false): a NaN window made every file
    # `internal`, an infinite tolerance passed every rate. Refused here, naming the field.
    bad = _first_non_finite(raw, "$")
    if bad is not None:
        at, value = bad
        raise PolicyError(
            f"{where} does not match policy.schema.json at {at}: {value} is not a finite number"
            + (" (1e400 and the like overflow to Infinity)" if value != "NaN" else "")
        )

    validator = Draft202012Validator(load_schema("policy.schema.json"))
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        at = first.json_path
        message = first.message
        if len(message) > _SHOWN_MESSAGE_CHARS:
            # jsonschema quotes the offending value whole: a huge one would bury the line.
            message = message[: _SHOWN_MESSAGE_CHARS - 1] + "…"
        raise PolicyError(f"{where} does not match policy.schema.json at {at}: {message}")


def _first_non_finite(value: Any, at: str) -> tuple[str, str] | None:
    """The JSON path and spelling of the first NaN or infinite number in `value`, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return at, "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        items: Any = ((f"{at}.{key}", item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{at}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for path, item in items:
        found = _first_non_finite(item, path)
        if found is not None:
            return found
    return None


def _build(raw: dict[str, Any], where: str) -> Policy:
    missing = [
        k for k in ("containers", "duration_s", "width_px", "height_px", "fps") if k not in raw
    ]
    if missing:
        raise PolicyError(
            f'{where} lacks {", ".join(missing)}: give them, or add "extends": "cometapi"'
        )
    fps = raw["fps"]
    warnings = raw.get("warnings", {})
    windows = tuple((float(w["min"]), float(w["max"])) for w in raw["duration_s"])
    sides = {key: (int(raw[key]["min"]), int(raw[key]["max"])) for key in ("width_px", "height_px")}
    for lo, hi in (*windows, *sides.values()):
        if lo > hi:
            raise PolicyError(f"{where}: a range has min {lo} above max {hi}")
    return Policy(
        name=str(raw.get("name", where)),
        containers=tuple(raw["containers"]),
        duration_windows=windows,
        width_px=sides["width_px"],
        height_px=sides["height_px"],
        fps_allowed=tuple(float(r) for r in fps.get("allowed", [24, 30, 60])),
        fps_tolerance=float(fps.get("tolerance", 0.01)),
        fps_average_tolerance=float(warnings.get("fps_average_tolerance", 0.01)),
        container_duration_tolerance_s=float(warnings.get("container_duration_tolerance_s", 0.1)),
        disabled_warnings=frozenset(warnings.get("disabled", [])),
    )
