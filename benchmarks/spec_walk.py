"""The walk of a sweep's spec through the code: which modules the spec object is handed to, in
order, and how often each interpretation step runs (planning, reading the roster, building
paradigms, naming harnesses and tool modes, probing grammars) for one sweep.

Runs a small sweep (4 paradigms x 2 harnesses, a roster, a served model's card) on a scripted
backend, so it needs no model; run it from two trees to compare them side by side:

    PYTHONPATH=OLD/src python benchmarks/spec_walk.py
    python benchmarks/spec_walk.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import ScriptedBackend
from slmscope.runs import RunSpec, sweep

STEPS = ("plan", "load_roster", "get_paradigm", "harness_of", "harness_named", "tool_mode_of")
ROSTER = """
- name: quant_agent
  role: You are a quantitative analyst.
  tools: [calculator]
- name: nlp_agent
  role: You read text.
  tools: [lookup]
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        roster = Path(tmp) / "roster.yaml"
        roster.write_text(ROSTER)
        spec = RunSpec(
            models=("scripted",),
            paradigms=("base", "single", "multi", "single+fallback"),
            tasks=("builtin:sentiment",),
            limit=2,
            harnesses=("repair", "constrained"),
            roster=str(roster),
            base_url="http://127.0.0.1:9/v1",  # a served card: its grammars are probed
        )
        backend = ScriptedBackend(["<think>t</think><final_answer>positive</final_answer>"] * 200)
        walk: list[str] = []
        steps: Counter[str] = Counter()
        named: list[str] = []

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            if event != "call":
                return
            module = frame.f_globals.get("__name__", "")
            if not module.startswith("slmscope."):
                return
            if frame.f_code.co_name in STEPS:
                steps[frame.f_code.co_name] += 1
            if any(value is spec for value in frame.f_locals.values()):
                walk.append(module.removeprefix("slmscope."))
                named.append(f"{walk[-1]}.{frame.f_code.co_name}")

        sys.setprofile(profile)
        try:
            sweep(spec, Path(tmp) / "run", backends={"scripted": backend})
        finally:
            sys.setprofile(None)
    hops = [m for n, m in enumerate(walk) if n == 0 or walk[n - 1] != m]
    returns = sum(count - 1 for count in Counter(hops).values())
    probes = sum(1 for o in backend.options if getattr(o["constraint"], "name", "") == "probe")
    print(f"the spec is handed to {len(walk)} functions in {len(set(hops))} modules")
    print(f"walk: {' -> '.join(hops)}")
    print(f"returns to a module already visited: {returns}")
    if "-v" in sys.argv:
        print("functions: " + ", ".join(dict.fromkeys(named)))
    for name in STEPS:
        print(f"{name}: {steps[name]}")
    print(f"grammar probes: {probes}")


if __name__ == "__main__":
    main()
