"""The single agent: one ReAct loop with the calculator, the Python sandbox, knowledge search
and a lookup over the task's own context."""

from __future__ import annotations

from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.agent_prompts import ToolMode, agent_prompt
from slmscope.paradigms.base import Given, OnStep
from slmscope.paradigms.harness import DEFAULT_HARNESS, Harness, harness_named
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.react import finish, react
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Problem
from slmscope.tools.base import Tool
from slmscope.tools.calculator import Calculator
from slmscope.tools.isolation import availability
from slmscope.tools.knowledge import KnowledgeSearch
from slmscope.tools.lookup import Lookup
from slmscope.tools.python_sandbox import PythonSandbox

SINGLE_ROLE = (
    "You are a careful financial analyst who solves the user's task step by step, using tools "
    "when they help (arithmetic, code, definitions, looking up the task's own text)."
)


def task_tools(problem: Problem, knowledge: KnowledgeSearch) -> dict[str, Tool]:
    """Every tool, the lookup bound to this problem's context (or its prompt, which FinBen rows
    use to carry the context). Where the sandbox's kernel boundary is missing, the python tool
    is left out rather than run weaker (the run record and the cell keys say so)."""
    tools: dict[str, Tool] = {
        "calculator": Calculator(),
        "python": PythonSandbox(),
        "knowledge_search": knowledge,
        "lookup": Lookup(problem.context or problem.prompt),
    }
    if not availability()[0]:
        del tools["python"]
    return tools


class SingleAgent:
    name = "single"
    uses_tools = True
    parts: tuple[str, ...] = ()

    def __init__(
        self,
        limits: AgentLimits | None = None,
        knowledge: KnowledgeSearch | None = None,
        mode: ToolMode = "tags",
        harness: Harness | str = DEFAULT_HARNESS,
    ) -> None:
        self.limits = limits or AgentLimits()
        self.mode = mode
        self.harness: Harness | None = (
            harness_named(harness) if isinstance(harness, str) else harness
        )
        self.knowledge = knowledge or KnowledgeSearch()  # indexed once, on first use

    async def solve(
        self,
        problem: Problem,
        backend: Backend,
        gen: GenerationConfig,
        *,
        on_step: OnStep | None = None,
        given: Given | None = None,
    ) -> Trace:
        tools = task_tools(problem, self.knowledge)
        assert self.harness is not None
        end = await react(
            agent="single",
            system=agent_prompt(SINGLE_ROLE, tools, self.mode),
            user=problem.text(),
            tools=tools,
            backend=backend,
            gen=gen,
            limits=self.limits,
            mode=self.mode,
            harness=self.harness,
            fmt=problem.answer,
            on_step=on_step,
        )
        return finish(problem.answer, end)
