"""Statistics over stored results, as pandas DataFrames:

from slmscope import analysis
results = analysis.load("runs/quickstart")        # one row per sample
summary = analysis.summarize(results)             # scores with 95% CIs, cost percentiles
analysis.nrq_by_paradigm(summary)                 # the reference study's NRQ
analysis.compare(results, "base", "single")       # paired tests on the same samples
"""

from slmscope.analysis.tables import (
    compare,
    composite_z,
    load,
    load_steps,
    nrq,
    nrq_by_paradigm,
    summarize,
)

__all__ = ["compare", "composite_z", "load", "load_steps", "nrq", "nrq_by_paradigm", "summarize"]
