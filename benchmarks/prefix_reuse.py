"""Prompt-prefix reuse, measured side by side in one run: prompt tokens evaluated against sent,
and latency per sample, per arm, with saved KV states and without.

Each model runs base, single and multi agent on the same built-in samples twice, in turn:
`--kv-states-mb 0` (only the previous call's prefix is reused, as before saved states) and the
default budget. Both runs evaluate prompts in the same fixed chunks, so their answers must be
the same; the script checks it. With `--via server`, the same arms go through llama-server (its
own slots and host-memory prompt cache, which it reports as `cached_tokens`) with `--cache-ram 0`
and with its default. Targets: at most 25% of prompt tokens evaluated for the single and the
multi agent, and their latency per sample down by at least a third.

    python benchmarks/prefix_reuse.py [--model ID ...] [--limit 2] [--tasks builtin]
        [--via embedded] [--via server]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from slmscope.analysis.tables import load
from slmscope.models import resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import llama_server

ARMS = ("base", "single", "multi")


def run(out: Path, model: str, limit: int, extra: list[str], tasks: list[str]) -> float:
    argv = [sys.executable, "-m", "slmscope", "run", "-m", model]
    argv += [a for t in tasks for a in ("-t", t)]
    argv += [a for arm in ARMS for a in ("-p", arm)]
    argv += ["--limit", str(limit), "--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def per_arm(out: Path) -> pd.DataFrame:
    frame = load(out)
    rows = []
    for arm, g in frame.groupby("paradigm", sort=False):
        sent = float(g["prompt_tokens"].sum())
        rows.append(
            {
                "arm": arm,
                "n": len(g),
                "sent/smp": sent / len(g),
                "evaluated": 1 - float(g["cached_tokens"].sum()) / sent,
                "latency_s": float(g["latency_s"].mean()),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def answers(out: Path) -> pd.Series:
    frame = load(out)
    return frame.set_index(["paradigm", "dataset", "sample_id"])["final_answer"].sort_index()


def side_by_side(title: str, off: Path, on: Path, wall: tuple[float, float]) -> None:
    a, b = per_arm(off), per_arm(on)
    table = a.add_suffix(" off").join(b.add_suffix(" on"))
    table["latency on/off"] = b["latency_s"] / a["latency_s"]
    same = answers(off).equals(answers(on))
    print(f"\n{title}  (wall {wall[0]:.0f} s off, {wall[1]:.0f} s on; same answers: {same})")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--limit", type=int, default=2, help="samples per built-in dataset")
    parser.add_argument(
        "--via", action="append", choices=["embedded", "server"], default=None,
        help="the embedded backend (default) and/or llama-server",
    )  # fmt: skip
    parser.add_argument("--tasks", action="append", default=None, help="task sets (builtin)")
    args = parser.parse_args()
    models = args.model or ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
    tasks = args.tasks or ["builtin"]
    via = args.via or ["embedded"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            if "embedded" in via:
                off, on = Path(tmp, f"{model}-off"), Path(tmp, f"{model}-on")
                wall = (
                    run(off, model, args.limit, ["--kv-states-mb", "0"], tasks),
                    run(on, model, args.limit, [], tasks),
                )
                side_by_side(f"{model}, embedded", off, on, wall)
            if "server" in via:
                runs = []
                for name, cache_ram in (("nocache", ("--cache-ram", "0")), ("cache", ())):
                    out = Path(tmp, f"{model}-{name}")
                    path = resolve(model).local_path
                    assert path is not None
                    with llama_server(path, model, 2, *cache_ram) as url:
                        runs.append((out, run(out, model, args.limit, ["--base-url", url], tasks)))
                side_by_side(
                    f"{model}, llama-server --parallel 2 (--cache-ram 0 | default)",
                    runs[0][0],
                    runs[1][0],
                    (runs[0][1], runs[1][1]),
                )


if __name__ == "__main__":
    main()
