"""check(): sources -> probe -> facts -> policy -> Result, one source at a time, in input order.

The library entry the CLI calls; a bad source becomes an `error` Result, never an exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import NetworkError, ProbeError
from .policy import Policy, judge, load_policy
from .policy.url import is_url
from .probing import DEFAULT_BACKEND, answered_by, probe
from .probing.limits import ProbeLimits
from .probing.options import RemoteOptions
from .verdict import Failure, Result, Violation

if TYPE_CHECKING:
    from .cache import ProbeCache


@dataclass(frozen=True)
class CheckOptions:
    """How to probe: the backend and its bounds, and for URLs the network limits and
    private-address policy."""

    backend: str = DEFAULT_BACKEND
    remote: RemoteOptions = field(default_factory=RemoteOptions)
    limits: ProbeLimits = field(default_factory=ProbeLimits)  # each backend parse's time, memory
    allow_private_urls: bool = False
    cache: ProbeCache | None = None  # facts of sources probed before (None: always probe)


def check_one(
    source: str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
    options: CheckOptions | None = None,
) -> Result:
    """Probe and judge one local file or http(s) URL."""
    policy = policy or load_policy()
    options = options or CheckOptions(backend=backend)
    name = os.fspath(source)
    if is_url(name):
        return _check_url(name, policy, options)
    started = time.perf_counter()
    cache = options.cache
    key = cache.file_key(name, options.backend) if cache is not None else None
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        facts, disagreements = hit
    else:
        try:
            probed = probe(name, backend=options.backend, limits=options.limits)
        except ProbeError as exc:
            return Result(
                name,
                "error",
                error=Failure(exc.kind, str(exc)),
                backend=options.backend,
                probe_ms=(time.perf_counter() - started) * 1000,
            )
        facts, disagreements = probed.facts, probed.disagreements
        if cache is not None:
            cache.put(key, facts, disagreements)
    elapsed = (time.perf_counter() - started) * 1000
    verdict = judge(facts, policy)
    return Result(
        name,
        verdict.verdict,
        verdict.violations,
        verdict.warnings,
        facts,
        backend=answered_by(options.backend, facts),
        disagreements=disagreements,
        probe_ms=elapsed,
        cached=hit is not None,
    )


def _check_url(url: str, policy: Policy, options: CheckOptions) -> Result:
    from .policy.url import (
        UNFETCHABLE,
        UrlGate,
        judge_before_fetch,
        judge_content_type,
        judge_status,
        redact_url,
        resolve_host,
        utcnow,
    )
    from .probing.remote import HttpStatusError, RedirectRefused, probe_url

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
        before = judge_before_fetch(
            url, allow_private=options.allow_private_urls, now=utcnow(), gate=gate
        )
    except NetworkError as exc:
        return failed(exc.kind, str(exc))
    if any(v.rule in UNFETCHABLE for v in before.violations):
        return Result(shown, "reject", before.violations, before.warnings, backend=backend)
    try:
        probed, info = probe_url(
            url,
            backend=backend,
            options=remote,
            cache=options.cache,
            gate=gate,
            limits=options.limits,
        )
    except RedirectRefused as exc:
        return Result(
            shown,
            "reject",
            [*before.violations, *exc.judgement.violations],
            _with_hop_warnings(before.warnings, exc.info.hop_warnings),
            backend=backend,
            remote=exc.info,
            probe_ms=(time.perf_counter() - started) * 1000,
        )
    except HttpStatusError as exc:
        return Result(
            shown,
            "reject",
            [*before.violations, judge_status(exc.status, url)],
            _with_hop_warnings(before.warnings, exc.info.hop_warnings),
            backend=backend,
            remote=exc.info,
            probe_ms=(time.perf_counter() - started) * 1000,
        )
    except (ProbeError, NetworkError) as exc:
        return failed(exc.kind, str(exc))
    elapsed = (time.perf_counter() - started) * 1000
    verdict = judge(probed.facts, policy)
    url_warnings = _with_hop_warnings(before.warnings, info.hop_warnings)
    warnings = [*url_warnings, *verdict.warnings]
    content = judge_content_type(info.content_type)
    if content is not None:
        warnings.insert(len(url_warnings), content)
    if info.prefix_only:
        warnings.append(prefix_warning(info.transfer.bytes, info.size_bytes))
    violations = [*before.violations, *verdict.violations]
    return Result(
        shown,
        "reject" if violations else "pass",
        violations,
        warnings,
        probed.facts,
        backend=probed.backend or backend,
        disagreements=probed.disagreements,
        probe_ms=elapsed,
        remote=info,
        cached=info.cached,
    )


def _with_hop_warnings(warnings: list[Violation], hops: list[Violation]) -> list[Violation]:
    """The URL's warnings, then what the redirect hops added: one per rule and address, so three
    hops on the same private host warn once, and a hop to another address warns of it."""
    seen = {(w.rule, str(w.actual)) for w in warnings}
    out = list(warnings)
    for warning in hops:
        if (warning.rule, str(warning.actual)) not in seen:
            seen.add((warning.rule, str(warning.actual)))
            out.append(warning)
    return out


def prefix_warning(read: int, size: int | None) -> Violation:
    return Violation(
        "url.no_range",
        f"the server ignores Range requests: judged from the first {read} bytes "
        f"of {size if size is not None else 'an unknown number of'}",
        "no Range support",
        "Range support",
        "serve the file from a server or bucket that supports Range requests",
    )


def iter_check(
    sources: Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
    options: CheckOptions | None = None,
) -> Iterator[Result]:
    policy = policy or load_policy()
    for source in sources:
        yield check_one(source, policy, backend=backend, options=options)


def check(
    sources: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
    options: CheckOptions | None = None,
) -> list[Result]:
    """Check one source or many (paths and URLs mixed); results keep the input order."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    return list(iter_check(sources, policy, backend=backend, options=options))
