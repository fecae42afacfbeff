"""check(): sources -> probe -> facts -> policy -> Result, one source at a time, in input order.

The library entry the CLI calls; a bad source becomes an `error` Result, never an exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from .errors import ProbeError
from .policy import Policy, judge, load_policy
from .probe import probe
from .verdict import Failure, Result


def check_one(
    source: str | os.PathLike[str], policy: Policy | None = None, *, backend: str = "mediainfo"
) -> Result:
    """Probe and judge one local file."""
    policy = policy or load_policy()
    name = os.fspath(source)
    started = time.perf_counter()
    try:
        probed = probe(name, backend=backend)
    except ProbeError as exc:
        return Result(
            name,
            "error",
            error=Failure(exc.kind, str(exc)),
            backend=backend,
            probe_ms=(time.perf_counter() - started) * 1000,
        )
    elapsed = (time.perf_counter() - started) * 1000
    verdict = judge(probed.facts, policy)
    return Result(
        name,
        verdict.verdict,
        verdict.violations,
        verdict.warnings,
        probed.facts,
        backend=backend,
        disagreements=probed.disagreements,
        probe_ms=elapsed,
    )


def iter_check(
    sources: Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    *,
    backend: str = "mediainfo",
) -> Iterator[Result]:
    policy = policy or load_policy()
    for source in sources:
        yield check_one(source, policy, backend=backend)


def check(
    sources: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    backend: str = "mediainfo",
) -> list[Result]:
    """Check one source or many; results keep the input order."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    return list(iter_check(sources, policy, backend=backend))
