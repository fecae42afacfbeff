"""Options of a remote probe (timeouts, deadline, prefix cap, retries, address judging), kept apart
from the HTTP code. Importing this costs nothing, so `check` on local files never loads requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import UsageError

DEFAULT_MAX_PREFIX = 32 * 1024 * 1024
# One source's whole budget: connect, redirects, every Range request and every body byte. A healthy
# probe takes 1-3 requests and well under 1 MB; a minute is twice the read timeout, so one stall
# that the read timeout catches still ends in its own words, and a server that drips a byte at a
# time (which resets every per-read timeout) cannot hold a batch worker for longer than this.
DEFAULT_DEADLINE_S = 60.0
# The longest Retry-After a probe sleeps through; a longer one is the server's final answer.
DEFAULT_RETRY_AFTER_CAP_S = 5.0
# Connections open to one host (and address set) at once, across a batch's probes. A URL probe is
# one or two round trips of at most 64 KiB, so a batch on one host runs at about
# per_host / (requests per URL x latency): 32 keep 300 URLs at 50 ms near the CPU bound (16 reach
# only half of it), while --workers 200 still opens no more than 32 connections to one CDN (an
# HTTP/2 browser multiplexes ~100 streams on one).
DEFAULT_PER_HOST = 32
# urllib3 fills a pool's queue with this many slots up front: a huge value costs memory and time.
MAX_PER_HOST = 1024


@dataclass(frozen=True)
class RemoteOptions:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_prefix_bytes: int = DEFAULT_MAX_PREFIX  # read at most this much from a server without Range
    retries: int = 2  # for 5xx answers and refused connections, with exponential back-off
    deadline_s: float = DEFAULT_DEADLINE_S  # wall clock for one source, after which: kind timeout
    retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S
    # Networks counted as public although they are not (a lab, or tests on loopback): an address
    # in one of these is judged like a public one, for the URL and every redirect hop.
    public_networks: tuple[str, ...] = ()
    # host -> its addresses; None asks the system resolver. Called once per host and probe, and
    # the connection goes to the addresses it answered (a second DNS answer cannot redirect us).
    resolve: Callable[[str], Sequence[str]] | None = None
    per_host: int = DEFAULT_PER_HOST  # connections open to one host at once (a batch's pools)

    def __post_init__(self) -> None:
        _check_networks(self.public_networks)
        if self.deadline_s <= 0:
            raise UsageError(f"the deadline must be positive, not {self.deadline_s}")
        if not 1 <= self.per_host <= MAX_PER_HOST:
            raise UsageError(
                f"connections per host must be 1 to {MAX_PER_HOST}, not {self.per_host}"
            )

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


def _check_networks(networks: Sequence[str]) -> None:
    if not networks:
        return  # the usual case, and every local check: ipaddress is not even loaded
    import ipaddress

    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise UsageError(f"not an IP network: {network!r}") from None
