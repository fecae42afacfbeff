"""check(): sources -> probe -> facts -> policy -> Result, one source at a time, in input order.

The library entry the CLI calls; a bad source becomes an `error` Result, never an exception.
Both caches (file and URL) are asked here, and every verdict comes from policy.judge. CheckOptions
holds values only: the probe cache and a run's kept-alive connections are resources their opener
closes, passed beside the options (`cache=`, `pools=`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from .errors import NetworkError, ProbeError, UsageError
from .facts import BackendName, Disagreement, Facts, ReaderName
from .policy import Policy, judge, load_policy
from .probing.limits import ProbeLimits
from .probing.names import DEFAULT_BACKEND, answered_by
from .probing.options import RemoteOptions
from .sources import KLING_PREFIX, is_url, parse_kling, redact_url
from .verdict import Failure, Result, Verdict

if TYPE_CHECKING:
    from .cache import ProbeCache
    from .policy.url import UrlFacts
    from .probing.transport import ConnectionPools


@dataclass(frozen=True)
class CheckOptions:
    """How to probe: the backend and its bounds, and for URLs the network limits and
    private-address policy."""

    backend: BackendName = DEFAULT_BACKEND
    remote: RemoteOptions = field(default_factory=RemoteOptions)
    limits: ProbeLimits = field(default_factory=ProbeLimits)  # each backend parse's time, memory
    allow_private_urls: bool = False


class KlingLookup(Protocol):
    """What checks a kling:TASK_ID/VIDEO_ID source: session.task_judge.KlingCheck (the task query
    client, its cache of actions, whether to probe the video). A live resource handed in beside
    the options, as the cache and the pools are, so that the pipeline never imports session."""

    def check(self, source: str, policy: Policy, options: CheckOptions) -> Result: ...


def _options(backend: BackendName | None, options: CheckOptions | None) -> CheckOptions:
    """`backend` is shorthand for CheckOptions(backend=...); given with `options`, it must agree."""
    if options is None:
        return CheckOptions(backend=backend or DEFAULT_BACKEND)
    if backend is not None and backend != options.backend:
        raise UsageError(
            f"backend={backend!r} contradicts options.backend={options.backend!r}: give one"
        )
    return options


def check_one(
    source: str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    backend: BackendName | None = None,
    options: CheckOptions | None = None,
    cache: ProbeCache | None = None,
    pools: ConnectionPools | None = None,
    kling: KlingLookup | None = None,
) -> Result:
    """Probe and judge one local file, http(s) URL or kling:TASK_ID/VIDEO_ID.

    `backend` (default auto) is a shorthand for `options=CheckOptions(backend=...)`; giving both
    with different backends is a UsageError. `cache` (an open ProbeCache: facts of sources probed
    before) is asked first and filled; `pools` are a run's kept-alive connections for a URL
    (None: the probe opens its own). The caller opened both and closes them. `kling` looks up a
    kling: source (it needs the API key: without it such a source is an `error`, kind `no_key`).
    """
    policy = policy or load_policy()
    options = _options(backend, options)
    name = os.fspath(source)
    if is_url(name):
        return check_url(name, policy, options, cache=cache, pools=pools)
    if name.startswith(KLING_PREFIX):  # a Kling video: ./kling:x names a file of that name
        return _check_kling(name, policy, options, kling)
    return judge_file(probe_file(name, options, cache), policy, options)


def _check_kling(
    source: str, policy: Policy, options: CheckOptions, kling: KlingLookup | None
) -> Result:
    try:
        parse_kling(source)
    except UsageError as exc:
        return Result(source, "error", error=Failure("kling_source", str(exc)))
    if kling is None:
        message = "a kling: source needs the API key (COMETAPI_KEY or --api-key-file)"
        return Result(source, "error", error=Failure("no_key", message))
    return kling.check(source, policy, options)


@dataclass(frozen=True)
class FileProbe:
    """What probing one local file gave, before any judging: its facts, or why there are none.

    The seam `check --dask` cuts at: a worker probes, the client judges (and keeps the cache).
    """

    name: str
    facts: Facts | None
    disagreements: list[Disagreement]
    failure: Failure | None
    probe_ms: float
    cached: bool = False


def probe_file(name: str, options: CheckOptions, cache: ProbeCache | None = None) -> FileProbe:
    """The cache (when given one), else the probe; a ProbeError becomes `failure`."""
    started = time.perf_counter()
    key = cache.file_key(name, options.backend) if cache is not None else None
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        facts, disagreements = hit
    else:
        try:
            from .probing.local import probe  # the box reader: not needed for a cached file

            probed = probe(name, backend=options.backend, limits=options.limits)
        except ProbeError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return FileProbe(name, None, [], Failure(exc.kind, str(exc)), elapsed)
        facts, disagreements = probed.facts, probed.disagreements
        if cache is not None:
            cache.put(key, facts, disagreements)
    elapsed = (time.perf_counter() - started) * 1000
    return FileProbe(name, facts, disagreements, None, elapsed, cached=hit is not None)


def judge_file(probed: FileProbe, policy: Policy, options: CheckOptions) -> Result:
    """The Result of one probed file under `policy` (pure: no I/O)."""
    if probed.facts is None:
        return Result(
            probed.name,
            "error",
            error=probed.failure,
            backend=options.backend,
            probe_ms=probed.probe_ms,
        )
    verdict = _judged(probed.facts, policy)
    return Result(
        probed.name,
        verdict.verdict,
        verdict.violations,
        verdict.warnings,
        probed.facts,
        backend=answered_by(options.backend, probed.facts),
        disagreements=probed.disagreements,
        probe_ms=probed.probe_ms,
        cached=probed.cached,
    )


def _judged(facts: Facts | None, policy: Policy, url: UrlFacts | None = None) -> Verdict:
    """policy.judge, then each problem `preflight fix` answers names it first (fixhints.py)."""
    verdict = judge(facts, policy, url)
    if facts is None or not (verdict.violations or verdict.warnings):
        return verdict
    from .fixhints import fix_first

    violations, warnings = fix_first(facts, policy, verdict.violations, verdict.warnings)
    return replace(verdict, violations=violations, warnings=warnings)


def check_url(
    url: str,
    policy: Policy,
    options: CheckOptions,
    *,
    cache: ProbeCache | None = None,
    pools: ConnectionPools | None = None,
) -> Result:
    """gate (resolve, judge what needs no request) -> fetch -> cache -> probe -> judge -> Result."""
    from .policy.url import (
        UNFETCHABLE,
        UrlFacts,
        UrlGate,
        private_address_of,
        resolve_host,
    )
    from .probing.remote import fetch

    started = time.perf_counter()
    backend = options.backend
    shown = redact_url(url)  # what is printed and stored: never the URL's credentials

    def failed(kind: str, message: str) -> Result:
        return Result(
            shown,
            "error",
            error=Failure(kind, message),
            backend=backend,
            probe_ms=(time.perf_counter() - started) * 1000,
        )

    remote = options.remote
    # One gate for the URL and its redirects: it resolves each host once and the probe connects
    # to exactly the addresses it judged.
    gate = UrlGate(
        allow_private=options.allow_private_urls,
        public_networks=remote.public_networks,
        resolve=remote.resolve or resolve_host,
    )
    try:
        subject = UrlFacts(url, private_address_of(url, gate), options.allow_private_urls)
    except NetworkError as exc:
        return failed(exc.kind, str(exc))
    before = judge(None, policy, subject)
    if any(v.rule in UNFETCHABLE for v in before.violations):
        return Result(shown, before.verdict, before.violations, before.warnings, backend=backend)
    facts: Facts | None = None
    disagreements: list[Disagreement] = []
    answered: ReaderName = backend
    try:
        with fetch(url, gate=gate, options=remote, pools=pools) as source:
            info = source.info
            if source.first is not None:  # the answer holds the file (else: the judge says why)
                # The first answer's validators tell whether the resource changed since last time.
                key = (
                    cache.url_key(
                        info.final_url, info.etag, info.last_modified, info.size_bytes, backend
                    )
                    if cache is not None
                    else None
                )
                hit = cache.get(key) if cache is not None else None
                if hit is not None:
                    info.cached = True
                    facts, disagreements = hit
                    answered = answered_by(backend, facts)
                else:
                    probed = source.probe(backend, options.limits)
                    facts, disagreements = probed.facts, probed.disagreements
                    answered = probed.backend or backend
                    if cache is not None:
                        cache.put(key, facts, disagreements)
    except (ProbeError, NetworkError) as exc:
        return failed(exc.kind, str(exc))
    elapsed = (time.perf_counter() - started) * 1000
    verdict = _judged(facts, policy, replace(subject, remote=info))
    return Result(
        shown,
        verdict.verdict,
        verdict.violations,
        verdict.warnings,
        facts,
        backend=answered,
        disagreements=disagreements,
        probe_ms=elapsed,
        remote=info,
        cached=info.cached,
    )


def sharing_connections(options: CheckOptions) -> ConnectionPools:
    """A new set of kept-alive connections for the URLs checked with `options` (the caller
    closes it when its sources are done: a context manager)."""
    from .probing.transport import ConnectionPools  # requests and urllib3: only for URLs

    return ConnectionPools(options.remote.per_host)


def iter_check(
    sources: Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    *,
    backend: BackendName | None = None,
    options: CheckOptions | None = None,
    cache: ProbeCache | None = None,
    kling: KlingLookup | None = None,
) -> Iterator[Result]:
    """Check sources one at a time, yielding each Result as it is ready (input order).

    The URLs among them share kept-alive connections (as a CLI batch does), closed when the
    iteration ends or the iterator is dropped. `cache`, `kling`: as for check_one.
    """
    policy = policy or load_policy()
    options = _options(backend, options)
    pools = None
    try:
        for source in sources:
            if pools is None and is_url(os.fspath(source)):
                pools = sharing_connections(options)
            yield check_one(source, policy, options=options, cache=cache, pools=pools, kling=kling)
    finally:
        if pools is not None:
            pools.close()


def check(
    sources: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    backend: BackendName | None = None,
    options: CheckOptions | None = None,
    cache: ProbeCache | None = None,
    kling: KlingLookup | None = None,
) -> list[Result]:
    """Check one source or many (paths, URLs and kling: sources mixed); results keep the input
    order."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    return list(
        iter_check(sources, policy, backend=backend, options=options, cache=cache, kling=kling)
    )
