"""What a Dask worker runs for one source: given its name (never its bytes), probe it there.

Kept free of Dask imports so the function pickles by reference and a worker imports only this.
"""

from __future__ import annotations

from ..pipeline import CheckOptions, FileProbe, check_url, probe_file
from ..policy import Policy
from ..verdict import Failure, Result


def probe_on_worker(name: str, options: CheckOptions) -> FileProbe:
    """A local file's facts, probed on the worker (which must see the path); never raises."""
    try:
        return probe_file(name, options)  # the cache is the client's: never shipped
    except Exception as exc:  # a bug must cost one source, not the batch
        return FileProbe(name, None, [], Failure("internal", f"{type(exc).__name__}: {exc}"), 0.0)


def check_url_on_worker(url: str, policy: Policy, options: CheckOptions) -> Result:
    """A URL's Result, judged on the worker: its gate, fetch and probe are one interleaved pass
    (each redirect hop is judged before it is connected to), so it is not cut in two."""
    try:
        return check_url(url, policy, options)
    except Exception as exc:
        from ..sources import redact_url  # what is shown is never the URL's credentials

        failure = Failure("internal", f"{type(exc).__name__}: {exc}")
        return Result(redact_url(url), "error", error=failure, backend=options.backend)
