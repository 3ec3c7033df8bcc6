"""Sweep specs in YAML: the shortest spec, the study's defaults, errors that point at the line,
and `slmscope sweep` running, resuming and planning a spec on the real SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMOL
from slmscope.cli import app
from slmscope.cli.app import console
from slmscope.errors import ConfigError
from slmscope.paradigms import DEFAULT_HARNESS
from slmscope.runs.spec import RunSpec
from slmscope.runs.spec_file import load_spec

SHORTEST = f"""models: [{SMOL}]
paradigms: [base]
tasks: [builtin]
samples: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_the_shortest_spec_gets_the_studys_defaults(tmp_path: Path) -> None:
    (run,) = load_spec(write(tmp_path, SHORTEST)).runs
    assert run.models == (SMOL,) and run.paradigms == ("base",) and run.limit == 3
    assert (run.gen.temperature, run.gen.top_p, run.max_turns) == (0.0, 0.9, 5)
    assert run.harnesses == (DEFAULT_HARNESS,) == RunSpec((SMOL,), ("base",), ("x",)).harnesses
    assert run.seed == 0


def test_a_full_spec_with_seeds_makes_one_run_per_seed(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"text": "x", "answer": "y"}\n')
    spec = write(
        tmp_path,
        SHORTEST
        + "harnesses: [strict, constrained]\nseeds: [1, 2]\n"
        + "generation: {max_tokens: 64, temperature: 0.2}\n"
        + "budgets: {max_turns: 3, token_budget: 4000}\n",
    )
    runs = load_spec(spec).runs
    assert [r.seed for r in runs] == [1, 2] and [r.gen.seed for r in runs] == [1, 2]
    assert runs[0].gen.max_tokens == 64 and runs[0].max_turns == 3
    assert runs[0].harnesses == ("strict", "constrained")
    assert runs[0].settings_tag() != runs[1].settings_tag()  # seeds never share cells
    files = load_spec(write(tmp_path, SHORTEST.replace("[builtin]", "[rows.jsonl]"))).runs[0]
    assert files.tasks == (str(tmp_path / "rows.jsonl"),)  # read from the spec's folder


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (SHORTEST + "sample: 3\n", ":5: sample: unknown key; did you mean 'samples'?"),
        (SHORTEST.replace("[base]", "\n  - base\n  - solo"), ":4: paradigms: unknown 'solo'"),
        (SHORTEST.replace("samples: 3", "samples: three"), ":4: samples: expected a whole"),
        (SHORTEST.replace(SMOL, "gpt-9"), ":1: models: unknown model 'gpt-9'"),
        (SHORTEST.replace("[builtin]", "[finben:nope]"), ":3: tasks: unknown FinBen set"),
        (SHORTEST + "generation: {temp: 1}\n", ":5: generation: unknown setting 'temp'"),
        (SHORTEST + "budgets: {max_turns: 0}\n", ":5: budgets: expected whole numbers"),
        (SHORTEST + "paradigms: [\n", ":6: not valid YAML"),
        ("- just\n- a list\n", ":1: a spec is a mapping"),
        (SHORTEST + "samples: 4\n", ":5: samples: given twice"),
        (SHORTEST + "energy: solar\n", ":5: energy: expected auto or nvml"),
        (SHORTEST + "seeds: !!python/name:os.system\n", ":5: seeds: not a plain value"),
    ],
)
def test_spec_errors_point_at_the_line(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert str(err.value).startswith(str(path)) and says in str(err.value), str(err.value)


def test_the_command_line_names_the_spec_line(tmp_path: Path) -> None:
    path = write(tmp_path, SHORTEST + "sample: 3\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and f"{path}:5: sample" in result.output


@pytest.mark.model
def test_sweep_runs_resumes_and_plans_a_spec_on_the_real_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)
    spec = write(
        tmp_path,
        SHORTEST.replace("[builtin]", "[builtin:sentiment]").replace("samples: 3", "samples: 2"),
    )
    out = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(app, ["sweep", str(spec), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "results:" in first.output
    again = runner.invoke(app, ["sweep", str(spec), "--out", str(out)])
    assert again.exit_code == 0 and "resuming: 2 of 2 samples" in again.output, again.output
    bigger = write(tmp_path, SHORTEST.replace("[builtin]", "[builtin:sentiment]"))
    planned = runner.invoke(app, ["sweep", str(bigger), "--out", str(out), "--plan"])
    assert planned.exit_code == 0, planned.output
    assert "builtin:sentiment" in planned.output
    row = next(line for line in planned.output.splitlines() if "builtin:sentiment" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[4:6] == ["3", "1"] and cells[-1].endswith(" s")  # 3 cells, 1 to do, estimated
