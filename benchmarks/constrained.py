"""What the constrained harness's grammar costs per generated token, measured side by side.

The same agent-turn prompts (the single agent's real system prompt on built-in tasks of every
type, greedy) are decoded three ways, taking turns prompt by prompt on one loaded model:
- free: no grammar;
- llama-cpp-python `grammar=`: llama.cpp's grammar sampler in the chain, checking the whole
  vocabulary at every step;
- slmscope's check-first processor (models/grammar.py): only the token the model would pick is
  checked, the whole vocabulary only when that one is refused.
Only decoding is timed (from the first token to the last), so the prompt's evaluation, which
no grammar touches, does not dilute the ratio. It prints ms per token, the ratios to free
decoding (target for slmscope's: <= 1.15), and how often the whole vocabulary was checked.

    python benchmarks/constrained.py [--model qwen2.5-coder-0.5b-instruct] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from slmscope.models.catalog import CATALOG
from slmscope.models.grammar import LazyGrammar
from slmscope.models.llamacpp import load_llama
from slmscope.models.pull import pull
from slmscope.paradigms.agent_prompts import agent_prompt
from slmscope.paradigms.constraint import agent_constraint
from slmscope.paradigms.single_agent import SINGLE_ROLE, task_tools
from slmscope.tasks.builtin import SUITE
from slmscope.tools.knowledge import KnowledgeSearch


def decode(llm: Any, messages: list[Any], max_tokens: int, **extra: Any) -> tuple[float, int]:
    """(seconds from the first token to the last, tokens generated)."""
    first: list[float] = []

    def stamp(input_ids: Any, scores: Any) -> Any:
        if not first:
            first.append(time.perf_counter())
        return scores

    processors = [stamp, *extra.pop("processors", [])]
    llm.reset()
    out = llm.create_chat_completion(
        messages=messages,
        max_tokens=max_tokens,
        temperature=0.0,
        stop=["<observation>"],
        logits_processor=processors,
        **extra,
    )
    end = time.perf_counter()
    return end - first[0], int(out["usage"]["completion_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()
    from llama_cpp import LlamaGrammar

    llm = load_llama(pull(CATALOG[args.model]), n_ctx=4096, n_threads=os.cpu_count())
    knowledge = KnowledgeSearch()
    prompts = []
    for make in SUITE.values():
        task = make()[0]
        problem = task.problem
        tools = task_tools(problem, knowledge)
        messages = [
            {"role": "system", "content": agent_prompt(SINGLE_ROLE, tools, "tags")},
            {"role": "user", "content": problem.text()},
        ]
        fmt = problem.answer
        prompts.append((messages, agent_constraint(tools, fmt, final_only=False).grammar))
    lazies: list[LazyGrammar] = []

    def lazy(grammar: str) -> dict[str, Any]:
        processor = LazyGrammar(llm, grammar, greedy=True)
        lazies.append(processor)
        return {"processors": [processor]}

    ways: dict[str, Callable[[str], dict[str, Any]]] = {
        "free": lambda grammar: {},
        "llama-cpp-python grammar=": lambda grammar: {
            "grammar": LlamaGrammar.from_string(grammar, verbose=False)
        },
        "slmscope check-first": lazy,
    }
    spent = {name: [0.0, 0] for name in ways}
    per_prompt: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    decode(llm, prompts[0][0], 8)  # warm-up
    for round_ in range(args.rounds):
        for n, (messages, grammar) in enumerate(prompts):
            shift = (n + round_) % len(order)  # each way goes first, second and third in turn
            for name in order[shift:] + order[:shift]:
                seconds, tokens = decode(llm, messages, args.max_tokens, **ways[name](grammar))
                spent[name][0] += seconds
                spent[name][1] += max(tokens - 1, 1)
                per_prompt[name].append(seconds / max(tokens - 1, 1))
    free = spent["free"][0] / spent["free"][1]
    print(f"model {args.model}, {len(prompts)} prompts x {args.rounds} rounds, greedy")
    for name, (seconds, tokens) in spent.items():
        ms = seconds / tokens * 1000
        median = statistics.median(per_prompt[name]) * 1000
        print(
            f"{name:28s} {ms:6.1f} ms/token (median per prompt {median:5.1f}), "
            f"{tokens} tokens, {ms / (free * 1000):.2f}x free decoding"
        )
    steps = sum(p.steps for p in lazies)
    full = sum(p.full_checks for p in lazies)
    print(f"check-first: the whole vocabulary was checked at {full} of {steps} steps")
    for processor in lazies:
        processor.close()


if __name__ == "__main__":
    main()
