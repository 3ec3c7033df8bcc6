"""The tools' protocol, knowledge search and lookup; the calculator (test_calculator.py) and the
Python sandbox (test_sandbox.py) have their own files."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmscope.paradigms.single_agent import task_tools
from slmscope.runs.executor import versions
from slmscope.runs.spec import RunSpec
from slmscope.tasks.builtin import SUITE
from slmscope.tools import isolation as isolation_module
from slmscope.tools.base import Tool, ToolError
from slmscope.tools.calculator import Calculator
from slmscope.tools.isolation import availability
from slmscope.tools.knowledge import KnowledgeSearch
from slmscope.tools.lookup import Lookup
from slmscope.tools.python_sandbox import PythonSandbox


def test_tools_follow_the_protocol() -> None:
    for tool in (Calculator(), PythonSandbox(), KnowledgeSearch(), Lookup("a")):
        assert isinstance(tool, Tool)
        assert tool.schema["type"] == "object" and tool.description
    assert asyncio.run(Calculator().run({"expression": "growth(100, 110)"})) == "10"
    with pytest.raises(ToolError, match="expression"):
        asyncio.run(Calculator().run({"expr": "1"}))


def test_knowledge_search_finds_the_glossary_entry() -> None:
    search = KnowledgeSearch()
    top = search.search("how is the dividend yield computed", k=3)
    assert top and top[0][0].startswith("Dividend yield:")
    assert all(score > 0 for _, score in top)
    assert asyncio.run(search.run({"query": "qqqq zzzz"})).startswith("no passage matches")
    with pytest.raises(ToolError, match="query"):
        asyncio.run(search.run({"k": 2}))


def test_knowledge_search_takes_the_users_documents(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text(
        "# Travel policy\nEmployees fly economy on flights under "
        "six hours.\n\n# Expense limit\nMeals up to 40 EUR a day.\n"
    )
    (docs / "notes.txt").write_text("The fiscal year ends in June.\n\nAudits happen yearly.\n")
    search = KnowledgeSearch([docs], include_glossary=False)
    assert search.search("when does the fiscal year end")[0][0] == "The fiscal year ends in June."
    assert search.search("meal expense limit")[0][0].startswith("Expense limit:")
    with pytest.raises(FileNotFoundError):
        KnowledgeSearch([tmp_path / "missing"]).search("x")


def test_lookup_reads_cells_and_lines_of_the_task_context() -> None:
    task = SUITE["builtin:table_qa"]()[0]
    assert task.context
    lookup = Lookup(task.context)
    revenue_row = next(ln for ln in task.context.splitlines() if ln.startswith("| Revenue"))
    expected = [c.strip() for c in revenue_row.strip("|").split("|")][3]
    assert asyncio.run(lookup.run({"row": "revenue", "column": "2023"})) == expected
    with pytest.raises(ToolError, match="no column '2030'; columns:"):
        asyncio.run(lookup.run({"row": "Revenue", "column": "2030"}))
    with pytest.raises(ToolError, match="no row 'Profit'; rows: Revenue"):
        asyncio.run(lookup.run({"row": "Profit", "column": "2023"}))
    assert "Revenue" in asyncio.run(lookup.run({"query": "revenue"}))
    csv_lookup = Lookup("day,close\n1,10.5\n2,11.0")
    assert csv_lookup.cell("2", "close") == "11.0"
    finqa_style = Lookup("||2014|2012|\n|long-term debt|$ 28987|$ 0|")  # an empty corner cell
    assert finqa_style.cell("long-term debt", "2012") == "$ 0"


def test_prose_with_commas_is_not_a_table_and_a_csv_table_is() -> None:
    """A 1.5B agent looked up column 'Type' in an NER task and was told the columns were the
    instruction's clauses: every line with a comma was read as a CSV row. Sentences, and
    `annual income: 102,000` lines, are now lines for a query, not a table."""
    for task in [*SUITE["builtin:ner"](), *SUITE["builtin:credit_scoring"]()]:
        lookup = Lookup(task.context or task.problem.prompt)
        assert lookup.table == [], task.id
        with pytest.raises(ToolError, match="no table; use a query"):
            lookup.cell("Entity", "Type")
    credit = SUITE["builtin:credit_scoring"]()[0]
    income = asyncio.run(Lookup(credit.context or "").run({"query": "annual income"}))
    assert income.startswith("annual income: ") and income[-1].isdigit(), income
    table = 'The table below, in CSV:\nyear,revenue,cost\n2021,"1,784",5\n2022,1,495,3\n2023,7,8'
    assert Lookup(table).table == [
        ["year", "revenue", "cost"],
        ["2021", "1,784", "5"],
        ["2023", "7", "8"],
    ]


@pytest.fixture
def no_boundary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without bubblewrap: PATH has no bwrap (and an empty slmscope cache)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SLMSCOPE_HOME", str(tmp_path / "home"))
    isolation_module._checked.cache_clear()
    yield
    isolation_module._checked.cache_clear()


def test_without_bubblewrap_the_python_tool_is_unavailable_never_weaker(
    no_boundary: None,
) -> None:
    available, why = availability()
    assert not available and why.startswith("bubblewrap (bwrap) is not installed")
    assert "apt-get install bubblewrap python3-seccomp" in why
    with pytest.raises(ToolError, match="python: bubblewrap"):  # nothing runs, weaker or not
        asyncio.run(PythonSandbox().run({"code": "print(1)"}))
    task = SUITE["builtin:table_qa"]()[0]
    assert set(task_tools(task.problem, KnowledgeSearch())) == {
        "calculator",
        "knowledge_search",
        "lookup",
    }
    spec = RunSpec(models=("m",), paradigms=("single",), tasks=("builtin",))
    assert versions()["python_tool"].startswith("unavailable: bubblewrap")
    unavailable_tag = spec.settings_tag()
    isolation_module._checked.cache_clear()
    os.environ["PATH"] = "/usr/bin:/bin"
    if availability()[0]:  # the same spec on a machine with the boundary is another cell
        assert spec.settings_tag() != unavailable_tag


def test_without_seccomp_bindings_the_python_tool_is_unavailable(
    no_boundary: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bwrap = shutil.which("bwrap", path="/usr/bin:/bin")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed here")
    (tmp_path / "bwrap").symlink_to(bwrap)
    # A Python without libseccomp's bindings (the virtual environment's own, -I keeps it so).
    monkeypatch.setattr(isolation_module, "FILTER_PYTHONS", (sys.executable,))
    available, why = availability()
    assert not available and "libseccomp's bindings" in why and "python3-seccomp" in why
    assert not list((tmp_path / "home").rglob("*.bpf"))  # nothing half-written is kept
