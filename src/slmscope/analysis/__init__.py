"""Statistics over stored results, as pandas DataFrames:

from slmscope import analysis
results = analysis.load("runs/quickstart")        # one row per sample
summary = analysis.summarize(results)             # scores with 95% CIs, cost percentiles
analysis.nrq_by_paradigm(summary)                 # the reference study's NRQ
analysis.compare(results, "base", "single")       # paired tests on the same samples
analysis.paradigm_table(results)                  # Table 2: quality and cost per paradigm
analysis.recommend(results)                       # a paradigm per task type, and how sure
analysis.harness_effect(results, steps)           # each harness against strict and base
analysis.harness_flips(results)                   # does the verdict change with the harness?
analysis.tool_use(results)                        # did the agents act: calls, errors, observed
analysis.idle_arms(analysis.tool_use(results))     # agent arms that acted on under a fifth
analysis.priors(results)                          # top answer share, majority and chance scores
analysis.prior_pairs(analysis.priors(results))    # differences between constants: label priors
analysis.prior_texts(pairs)                       # those pairs in words, one per dataset
analysis.router_figures("runs/quickstart", results)  # a cross-validated router per model
"""

from slmscope.analysis.harness import harness_effect, harness_flips
from slmscope.analysis.overview import (
    agent_costs,
    outcome_shares,
    paradigm_table,
    pareto_front,
    recommend,
)
from slmscope.analysis.router_verdict import router_figures
from slmscope.analysis.tables import (
    arms,
    compare,
    composite_z,
    load,
    load_runs,
    load_steps,
    nrq,
    nrq_by_paradigm,
    summarize,
)
from slmscope.analysis.tool_use import idle_arms, prior_pairs, prior_texts, priors, tool_use

__all__ = [
    "agent_costs",
    "arms",
    "compare",
    "composite_z",
    "harness_effect",
    "harness_flips",
    "idle_arms",
    "load",
    "load_runs",
    "load_steps",
    "nrq",
    "nrq_by_paradigm",
    "outcome_shares",
    "paradigm_table",
    "pareto_front",
    "prior_pairs",
    "prior_texts",
    "priors",
    "recommend",
    "router_figures",
    "summarize",
    "tool_use",
]
