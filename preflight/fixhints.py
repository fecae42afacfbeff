"""Hints that name `preflight fix` first: what its plan would do for each problem, then the raw
ffmpeg command (often a re-encode where fix would re-time or cut losslessly).

The plan is fix's own (fixing.plan.make_plan, pure: no ffprobe, no file read), so a hint says
what `preflight fix --dry-run` would print. Loaded only when a file has a problem fix answers.
The pipeline applies it after policy.judge: the policy knows nothing of fix, and fix's planner
imports the policy, so the call belongs above both.
"""

from __future__ import annotations

from dataclasses import replace

from .facts import Facts
from .policy import Policy
from .verdict import Violation

_FIXABLE = ("container.", "duration.", "resolution.", "fps.")


def fix_first(
    facts: Facts, policy: Policy, violations: list[Violation], warnings: list[Violation]
) -> tuple[list[Violation], list[Violation]]:
    """The same problems, each that `preflight fix` answers with its plan's step named first."""
    problems = (*violations, *warnings)
    if not any(p.rule.startswith(_FIXABLE) for p in problems):
        return violations, warnings
    from .fixing.keep import StreamInfo
    from .fixing.plan import make_plan

    rules = {v.rule for v in violations}
    plan = make_plan(facts, rules, {w.rule for w in warnings}, policy, StreamInfo())
    if plan.unfixable:
        return violations, warnings
    steps: dict[str, tuple[str, bool]] = {}
    for step in plan.steps:  # the first step answering a rule is the one that names it
        steps.setdefault(step.rule, (step.detail, step.lossless))

    def hinted(problem: Violation) -> Violation:
        if problem.rule not in steps:
            return problem
        detail, lossless = steps[problem.rule]
        how = "lossless" if lossless else "re-encode"
        hint = f"preflight fix FILE ({how}: {detail})"
        if problem.hint:
            hint += f"; or by hand: {problem.hint}"
        return replace(problem, hint=hint)

    return [hinted(v) for v in violations], [hinted(w) for w in warnings]
