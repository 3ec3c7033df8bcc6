"""Runs: the spec and plan, the sweep, the executors and the results store.

The library entry point is `sweep(spec, out)` (see sweep.py); its records are `Result` and
`StepRecord` (records.py)."""

from slmscope.runs.records import Result, StepRecord
from slmscope.runs.spec import RunSpec
from slmscope.runs.sweep import SweepSummary, sweep, sweep_async

__all__ = ["Result", "RunSpec", "StepRecord", "SweepSummary", "sweep", "sweep_async"]
