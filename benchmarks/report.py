"""How long the HTML report takes to write and to open, and how large it is.

Given a run directory, it times `write_report` on it (median of --repeat runs) and, where
Debian's chromium and chromedriver are installed, the page's load in headless Chromium until
every chart is drawn. Without a run directory it builds a synthetic one (clearly not model
output: random scores and costs over the built-in suite's ids, 3 steps per agent sample) of
--samples samples per paradigm, so the figure can be reproduced anywhere.

    python benchmarks/report.py [RUN_DIR] [--samples 250] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from slmscope.report.html import write_report
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.store import Store

PARADIGMS = ("base", "single", "multi", "single+fallback")


def synthetic_run(folder: Path, per_paradigm: int, seed: int = 0) -> Path:
    """A results file shaped like a real run, filled with random numbers."""
    rng = random.Random(seed)
    store = Store(folder)
    store.start_run("synthetic", "2026-01-01T00:00:00", spec={}, versions={}, machine={}, models={})
    types = ("sentiment", "classification", "ner", "qa", "stock_movement", "credit_scoring",
             "summarization", "bankruptcy")  # fmt: skip
    for paradigm in PARADIGMS:
        for i in range(per_paradigm):
            task_type = types[i % len(types)]
            key = f"m|{paradigm}|builtin:{task_type}|s{i}"
            calls = 1 if paradigm == "base" else 3
            tokens = [rng.randint(80, 900) for _ in range(calls)]
            result = Result(
                run_id="synthetic", cell_key=key, model="m", paradigm=paradigm,
                harness="none" if paradigm == "base" else "repair",
                dataset=f"builtin:{task_type}", task_type=task_type, sample_id=f"s{i}",
                outcome=rng.choice(["ok", "ok", "no_final_answer", "max_steps"]),
                score=float(rng.random() < 0.5), final_answer="positive", gold="positive",
                prompt_tokens=sum(tokens), completion_tokens=30 * calls, cached_tokens=0,
                total_tokens=sum(tokens) + 30 * calls, n_calls=calls,
                latency_s=rng.uniform(0.2, 8), energy_j=rng.uniform(1, 60),
                energy_method="estimate", usage_source="backend", created_at="now",
            )  # fmt: skip
            steps = []
            for turn, t in enumerate(tokens, 1):
                steps.append(StepRecord(
                    run_id="synthetic", cell_key=key, model="m", paradigm=paradigm,
                    harness=result.harness, dataset=result.dataset, sample_id=f"s{i}",
                    agent="base" if paradigm == "base" else "single", turn=turn,
                    prompt_tokens=t, completion_tokens=30, cached_tokens=0, latency_s=0.5,
                    messages="[]", output="<think>...</think>" + "x" * rng.randint(50, 600),
                    energy_j=1.0, energy_method="estimate",
                ))  # fmt: skip
            store.write_sample(result, steps)
    store.finish_run("synthetic", "2026-01-01T00:10:00", "complete")
    store.close()
    return folder


def chromium_load_s(page: Path) -> float | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        start = time.perf_counter()
        browser.get(page.resolve().as_uri())  # returns after the load event: charts drawn
        drawn = browser.execute_script(
            "return document.querySelectorAll('.js-plotly-plot .main-svg').length"
        )
        elapsed = time.perf_counter() - start
    finally:
        browser.quit()
    return elapsed if drawn else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path)
    parser.add_argument("--samples", type=int, default=250, help="synthetic: per paradigm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or synthetic_run(Path(tmp) / "synthetic", args.samples)
        html = Path(tmp) / "report.html"
        times = []
        for _ in range(args.repeat):
            info = write_report([run_dir], html)
            times.append(info.seconds)
        kind = "real" if args.run_dir else "synthetic"
        print(f"run: {run_dir} ({kind}), {info.samples} samples")
        print(f"write_report: median {statistics.median(times):.2f} s over {args.repeat} "
              f"(min {min(times):.2f}, max {max(times):.2f})")  # fmt: skip
        print(f"HTML: {info.bytes / 1e6:.1f} MB")
        load = chromium_load_s(html)
        print("Chromium load: " + (f"{load:.2f} s" if load is not None else "not measured"))


if __name__ == "__main__":
    main()
