"""slmscope's overhead over raw llama-cpp-python, measured side by side in one run.

The same FinBen prompts (50 rows of fpb.jsonl, greedy, 16 new tokens) go through raw
`Llama.create_chat_completion` calls and through slmscope's run path (`execute`, what
`slmscope run --paradigm base` calls: base paradigm, scoring, SQLite writes) on the same loaded
model. Model loading is excluded on both sides. Prompts go in blocks whose order alternates
(ABBA), because these machines are noisy; the figures are ratios of summed wall and CPU times.
Target: within 3%.

    python benchmarks/overhead.py [--data ../shared/finben] [--model ID] [--rows 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from slmscope.models import GenerationConfig, resolve
from slmscope.models.llamacpp import load_llama
from slmscope.models.pull import pull
from slmscope.paradigms.prompts import base_messages
from slmscope.runs.executor import RunTotals, execute
from slmscope.runs.plan import resolve as resolve_sweep
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import Store
from slmscope.tasks.record import Task

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "finben"


def fpb_tasks(data: Path, rows: int) -> list[Task]:
    tasks = []
    with (data / "fpb.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            tasks.append(
                Task(
                    id=str(row["id"]),
                    dataset="fpb",
                    task_type="sentiment",
                    prompt=row["conversations"][0]["value"],
                    gold=row["conversations"][1]["value"],
                    scorer="label_accuracy",
                    choices=("negative", "neutral", "positive"),
                )
            )
            if len(tasks) == rows:
                break
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--block", type=int, default=5)
    args = parser.parse_args()
    if not (args.data / "fpb.jsonl").is_file():
        raise SystemExit(f"{args.data / 'fpb.jsonl'} not found: pass --data DIR")

    card = resolve(args.model)
    path = pull(card)
    threads = os.cpu_count()
    gen = GenerationConfig(max_tokens=16, temperature=0.0, top_p=0.9, seed=0)
    tasks = fpb_tasks(args.data, args.rows)
    spec = RunSpec(
        models=(card.id,),
        paradigms=("base",),
        tasks=("fpb",),
        gen=gen,
        n_ctx=4096,
        n_threads=threads,
    )
    llm = load_llama(path, n_ctx=spec.n_ctx, n_threads=threads)  # loaded once, outside timing

    def raw(block: list[Task]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for task in block:
            llm.create_chat_completion(
                messages=base_messages(task.problem),
                max_tokens=gen.max_tokens,
                temperature=gen.temperature,
                top_p=gen.top_p,
                seed=gen.seed,
            )
        return time.perf_counter() - wall, time.process_time() - cpu

    async def run_block(block: list[Task], store: Store) -> RunTotals:
        resolved = await resolve_sweep(spec, cards={card.id: card}, tasks=block)
        return await execute(resolved, store)

    def slmscope(block: list[Task]) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp))
            wall, cpu = time.perf_counter(), time.process_time()
            totals = asyncio.run(run_block(block, store))
            elapsed = time.perf_counter() - wall, time.process_time() - cpu
            store.close()
        assert totals.done == len(block)
        return elapsed

    blocks = [tasks[i : i + args.block] for i in range(0, len(tasks), args.block)]
    raw(blocks[0])  # warm-up: page the weights in
    walls: dict[str, list[float]] = {"raw": [], "slmscope": []}
    cpus: dict[str, list[float]] = {"raw": [], "slmscope": []}
    for r in range(args.rounds):
        for b, block in enumerate(blocks):
            order = (raw, slmscope) if (r + b) % 2 == 0 else (slmscope, raw)
            for fn in order:
                wall, cpu = fn(block)
                walls[fn.__name__].append(wall)
                cpus[fn.__name__].append(cpu)
    print(
        f"model {card.id}, {len(tasks)} fpb prompts x {args.rounds} rounds, "
        f"{gen.max_tokens} new tokens, greedy, {threads} threads, "
        f"blocks of {args.block} in alternating order"
    )
    for name in walls:
        n = len(tasks) * args.rounds
        print(
            f"  {name:9s} wall {sum(walls[name]):7.2f} s ({sum(walls[name]) / n * 1000:.1f} ms "
            f"per prompt)   cpu {sum(cpus[name]):7.2f} s"
        )
    block_ratios = [s / r for s, r in zip(walls["slmscope"], walls["raw"], strict=True)]
    print(
        f"  per-block wall ratios: median {statistics.median(block_ratios):.3f}, "
        f"min {min(block_ratios):.3f}, max {max(block_ratios):.3f}"
    )
    wall_ratio = sum(walls["slmscope"]) / sum(walls["raw"])
    cpu_ratio = sum(cpus["slmscope"]) / sum(cpus["raw"])
    print(
        f"overhead ratio slmscope/raw: wall {wall_ratio:.3f}, cpu {cpu_ratio:.3f} (target <= 1.030)"
    )


if __name__ == "__main__":
    main()
