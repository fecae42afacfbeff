"""The pipeline's check, for fix's before- and after-checks (run.py, batch.py): the façade's other
half, apart from deps.py so that the planner, which check itself asks for its hints, never leads
back to the pipeline.
"""

from __future__ import annotations

from ..pipeline import check_one

__all__ = ["check_one"]
