"""Bad inputs and faults against the command line, each judged: handled (one line naming the
place, nothing lost, nothing wrong stored) or what went wrong. With `--before DIR` the same
faults run against another checkout too (an earlier commit: `git worktree add DIR REV`), and
the verdicts are printed side by side.

    python benchmarks/faults.py [--before DIR]

Served models are a fake OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py), so no
model is loaded; each run is `python -m slmscope` in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fake_openai import FakeServer, fake_server  # noqa: E402

ROW = {"task_type": "sentiment", "prompt": "Profits rose.", "gold": "positive",
       "choices": ["positive", "negative"]}  # fmt: skip


@dataclass
class Done:
    code: int | None
    err: str
    out: Path


def rows(out: Path, where: str = "1") -> list[dict[str, object]]:
    try:
        con = sqlite3.connect(out / "results.sqlite")
        con.row_factory = sqlite3.Row
        with con:
            return [dict(r) for r in con.execute(f"SELECT * FROM results WHERE {where}")]
    except sqlite3.Error:
        return []


class Probe:
    def __init__(self, tree: Path, server: FakeServer, work: Path) -> None:
        self.tree, self.server, self.work = tree, server, work

    def slmscope(self, *args: str, timeout: float = 60, out: Path | None = None) -> Done:
        env = {**os.environ, "PYTHONPATH": str(self.tree / "src"), "NO_COLOR": "1"}
        try:
            done = subprocess.run([sys.executable, "-m", "slmscope", *args], capture_output=True,
                                  text=True, timeout=timeout, env=env)  # fmt: skip
            return Done(done.returncode, done.stderr + done.stdout, out or self.work)
        except subprocess.TimeoutExpired as err:
            return Done(None, str(err.stderr or ""), out or self.work)

    def run(self, name: str, *args: str, model: str = "good", timeout: float = 60) -> Done:
        out = self.work / name
        return self.slmscope("run", "-m", model, "--base-url", self.server.base_url,
                             "--out", str(out), *args, timeout=timeout, out=out)  # fmt: skip

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path


def jsonl(*changes: dict[str, object]) -> str:
    return "".join(json.dumps({"id": f"r{i}", **ROW, **c}) + "\n" for i, c in enumerate(changes))


def one_line(done: Done, *words: str) -> str:
    """The verdict on a run that should have refused in one line naming the place."""
    if done.code is None:
        return "STALLED (still running at the time limit)"
    if "Traceback" in done.err:
        return "TRACEBACK"
    if done.code == 0:
        return "ACCEPTED (exit 0)"
    errors = [ln for ln in done.err.splitlines() if ln.startswith("error:")]
    if len(errors) != 1 or not all(w in done.err for w in words):
        return f"unclear: {(errors or [done.err.strip()[-90:]])[0][:90]}"
    return "handled"


def same_stem(p: Probe) -> str:
    a = p.file("a/test.jsonl", jsonl({}, {}))
    b = p.file("b/test.jsonl", jsonl({"gold": "negative"}, {"gold": "negative"}))
    done = p.run("stem", "-t", str(a), "-t", str(b))
    if done.code == 0 and len(rows(done.out)) < 4:
        return f"WRONG: exit 0 with {len(rows(done.out))} of 4 rows (one file overwrote the other)"
    return one_line(done, "test")


def edited_row(p: Probe) -> str:
    data = p.file("edit/test.jsonl", jsonl({}, {"gold": "negative"}))
    p.run("edit", "-t", str(data))
    p.file("edit/test.jsonl", jsonl({}, {"gold": "positive"}))
    done = p.run("edit", "-t", str(data))
    fresh = rows(done.out, "sample_id = 'r1' AND gold = 'positive'")
    if not fresh:
        return "WRONG: the edited row kept its old gold and score"
    return "handled" if "no longer match their data" in done.err else "unclear: not said"


def broken_stream(kind: str, stream: bool = True) -> Callable[[Probe], str]:
    def probe(p: Probe) -> str:
        p.server.fail_after(len(p.server.requests) + 1, kind)  # the first request passes
        try:
            done = p.run(f"s-{kind}-{stream}", "-t", "builtin:sentiment", "--limit", "2",
                         *([] if stream else ["--no-stream"]))  # fmt: skip
        finally:
            p.server.fail_after(0, None)
        outcomes = [r["outcome"] for r in rows(done.out)]
        if any(o not in ("backend_error", "ok") for o in outcomes):
            return f"WRONG: scored as the model's ({', '.join(map(str, outcomes))})"
        if done.code == 0 and outcomes and set(outcomes) == {"backend_error"}:
            return "unclear: every sample a backend error, yet exit 0"
        return "handled" if done.code != 0 and "backend error" in done.err else one_line(done)

    return probe


def wrong_model(p: Probe) -> str:
    done = p.run("wrong-model", "-t", "builtin:sentiment", "--limit", "2", model="qwen-typo")
    if done.code == 0:
        return "WRONG: exit 0, run 'complete', every sample a backend error"
    return one_line(done, "qwen-typo")


def never_answers(p: Probe) -> str:
    args = ["-t", "builtin:sentiment", "--limit", "2", "--request-timeout", "2", "--retries", "0"]
    done = p.run("hang", *args, model="hang", timeout=30)
    if done.code == 2 and "No such option" in done.err:
        done = p.run("hang2", "-t", "builtin:sentiment", "--limit", "2", model="hang", timeout=30)
    return one_line(done)


def spec_without_models(p: Probe) -> str:
    spec = p.file("empty.yaml", "models: []\ntasks: [builtin:sentiment]\n")
    return one_line(p.slmscope("sweep", str(spec), "--out", str(p.work / "sw")), "empty.yaml:1")


def config_typo(p: Probe) -> str:
    config = p.file("typo.yaml", "name: typo\ntask_type: sentiment\nchoises: [a, b]\n")
    return one_line(p.run("typo", "-t", str(config)), "typo.yaml:3")


def setting(*option: str) -> Callable[[Probe], str]:
    def probe(p: Probe) -> str:
        done = p.run("set-" + "".join(option), "-t", "builtin:sentiment", "--limit", "1", *option)
        stored = rows(done.out)
        if done.code == 0 or stored:
            return f"ACCEPTED: {len(stored)} sample(s) stored, outcome(s) " + ", ".join(
                sorted({str(r["outcome"]) for r in stored})
            )
        return one_line(done)

    return probe


def own_row(change: dict[str, object], word: str) -> Callable[[Probe], str]:
    def probe(p: Probe) -> str:
        data = p.file(f"own-{word}.jsonl", jsonl({}, change))
        return one_line(p.run(f"own-{word}", "-t", str(data)), ":2:", word)

    return probe


def semicolon_csv(p: Probe) -> str:
    data = p.file("semi.csv", "id;task_type;prompt;gold\na;sentiment;p;positive\n")
    return one_line(p.run("semi", "-t", str(data)), "';'")


def folder_as_file(p: Probe) -> str:
    (p.work / "folder.jsonl").mkdir(exist_ok=True)
    return one_line(p.run("folder", "-t", str(p.work / "folder.jsonl")), "folder")


def skip_bad(name: str, content: bytes | str, suffix: str) -> Callable[[Probe], str]:
    def probe(p: Probe) -> str:
        data = p.file(f"skip-{name}.{suffix}", content)
        done = p.run(f"skip-{name}", "-t", str(data), "--skip-bad-rows")
        if done.code == 0 and rows(done.out):
            return "handled" if "skipped" in done.err else "unclear: skipped silently"
        return f"STOPPED: {done.err.strip().splitlines()[-1][:80]}"

    return probe


def background(p: Probe, name: str, limit: int = 8) -> tuple[subprocess.Popen[str], Path]:
    out = p.work / name
    env = {**os.environ, "PYTHONPATH": str(p.tree / "src"), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "slmscope", "run", "-m", "slow", "--base-url", p.server.base_url,
         "-t", "builtin:sentiment", "--limit", str(limit), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(rows(out)) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    return proc, out


def sigterm(p: Probe) -> str:
    proc, out = background(p, "term", limit=20)
    if proc.poll() is not None:
        return "UNCLEAR: the run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    status = sqlite3.connect(out / "results.sqlite").execute("SELECT status FROM runs").fetchone()
    if status[0] != "interrupted" or "interrupted" not in err:
        return (
            f"UNCLEAR: exit {proc.returncode}, run left '{status[0]}', said {err.strip()[-60:]!r}"
        )
    return "handled"


def two_writers(p: Probe) -> str:
    proc, out = background(p, "two", limit=20)  # about 10 s of samples
    args = ["-t", "builtin:sentiment", "--limit", "20", "--out", str(out)]
    second = p.slmscope("run", "-m", "slow", "--base-url", p.server.base_url, *args)
    still = proc.poll() is None
    proc.communicate(timeout=60)
    if second.code == 0 and not still:
        return "UNCLEAR: the first run ended before the second started"
    if second.code == 0:
        return "WRONG: both ran (the server got requests twice)"
    return one_line(second, "another slmscope process")


def deleted_results(p: Probe) -> str:
    proc, out = background(p, "deleted", limit=20)
    for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        return "WRONG: went on unnoticed, exit 0"
    return one_line(Done(proc.returncode, err, out), "deleted")


def data_ignored(p: Probe) -> str:
    done = p.run("data", "-t", "builtin:sentiment", "--limit", "1", "--data", str(p.work))
    return "handled" if "is not used" in done.err else "SILENT: --data ignored without a word"


def trace_elsewhere(p: Probe) -> str:
    done = p.run("trace", "-t", "builtin:sentiment", "--limit", "1")
    sample = rows(done.out)[0]["sample_id"]
    said = p.slmscope("trace", str(done.out), str(sample), "--paradigm", "multi")
    return "handled" if "stored under" in said.err else f"unclear: {said.err.strip()[-70:]}"


FAULTS: dict[str, Callable[[Probe], str]] = {
    "two task files with the same stem": same_stem,
    "an edited dataset, resumed": edited_row,
    **{
        f"stream: {k}": broken_stream(k)
        for k in ("invalid-json", "html", "empty-choices", "cut-short")
    },
    **{
        f"no stream: {k}": broken_stream(k, False)
        for k in ("invalid-json", "html", "empty-choices")
    },
    "a model name the server lacks": wrong_model,
    "a server that never answers": never_answers,
    "a sweep spec with models: []": spec_without_models,
    "a task config with a typo'd key": config_typo,
    "--max-tokens 0": setting("--max-tokens", "0"),
    "--max-tokens -5": setting("--max-tokens", "-5"),
    "--temperature -1": setting("--temperature", "-1"),
    "--top-p 5": setting("--top-p", "5"),
    "--n-ctx 16": setting("--n-ctx", "16"),
    "own file: gold outside its choices": own_row({"gold": "bullish"}, "gold"),
    "own file: prompt 12345": own_row({"prompt": 12345}, "prompt"),
    "own file: choices 'positive'": own_row({"choices": "positive"}, "choices"),
    "a ';'-separated CSV": semicolon_csv,
    "a folder given as a task file": folder_as_file,
    "--skip-bad-rows, a broken JSON line": skip_bad("json", jsonl({}) + "{oops\n", "jsonl"),
    "--skip-bad-rows, a non-UTF-8 line": skip_bad(
        "utf8", jsonl({}).encode() + b'{"id": "\xff"}\n', "jsonl"
    ),
    "--skip-bad-rows, a short CSV row": skip_bad(
        "csv", "id,task_type,prompt,gold\na,sentiment,p,positive\nb,sentiment\n", "csv"
    ),
    "SIGTERM mid-run": sigterm,
    "two runs on one --out": two_writers,
    "results.sqlite deleted mid-run": deleted_results,
    "--data with only built-in tasks": data_ignored,
    "trace --paradigm multi of a base-only sample": trace_elsewhere,
}


def verdicts(tree: Path) -> dict[str, str]:
    found = {}
    with fake_server() as server, tempfile.TemporaryDirectory() as work:
        probe = Probe(tree, server, Path(work))
        for name, fault in FAULTS.items():
            try:
                found[name] = fault(probe)
            except Exception as err:  # a probe that breaks is a verdict too
                found[name] = f"PROBE FAILED: {type(err).__name__}: {err}"[:100]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout, judged beside this one")
    args = parser.parse_args()
    now = verdicts(ROOT)
    before = verdicts(args.before) if args.before else {}
    for name, verdict in now.items():
        line = f"{name:46s} {verdict}"
        print(f"{line:120s} | before: {before[name]}" if before else line)
    for label, found in (("this checkout", now), ("before", before)):
        if found:
            handled = sum(v == "handled" for v in found.values())
            print(f"{label}: {handled} of {len(found)} handled")


if __name__ == "__main__":
    main()
