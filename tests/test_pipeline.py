"""check_one's arguments: `backend` is shorthand for CheckOptions(backend=...), never ignored."""

from __future__ import annotations

import pytest

from preflight import CheckOptions, UsageError, check, check_one, iter_check, load_policy

from .conftest import FIXTURES

GOOD = FIXTURES / "media" / "fmt_mp4_h264.mp4"
POLICY = load_policy()


def test_backend_alone_builds_the_options() -> None:
    assert check_one(GOOD, POLICY).backend == "boxes"  # auto: the box reader alone
    assert check_one(GOOD, POLICY, backend="mediainfo").backend == "mediainfo"


def test_backend_that_agrees_with_the_options_is_fine() -> None:
    options = CheckOptions(backend="mediainfo")
    assert check_one(GOOD, POLICY, backend="mediainfo", options=options).backend == "mediainfo"
    assert check_one(GOOD, POLICY, options=options).backend == "mediainfo"
    assert [r.backend for r in check([GOOD], POLICY, options=options)] == ["mediainfo"]


def test_a_backend_contradicting_the_options_is_a_usage_error() -> None:
    # It used to be silently ignored: the caller asked for ffprobe and got MediaInfo.
    options = CheckOptions(backend="mediainfo")
    with pytest.raises(UsageError, match="contradicts"):
        check_one(GOOD, POLICY, backend="ffprobe", options=options)
    with pytest.raises(UsageError, match="contradicts"):
        list(iter_check([GOOD], POLICY, backend="ffprobe", options=options))
