"""preflight.fixing: turn a rejected video into one the policy accepts, losslessly where the file
allows, and prove it with a re-check (issue 12). `run.fix()` is the library entry (exported as
`preflight.fix`); the CLI wraps it.

The package imports nothing itself: its pure planner (plan, targets, keep, steps) is also what
check's fix-first hints ask (fixhints.py), and must not bring run, which re-checks through the
pipeline, along with it.
"""
