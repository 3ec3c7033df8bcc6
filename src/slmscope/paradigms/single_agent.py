"""The single agent: one ReAct loop with the calculator, the Python sandbox, knowledge search
and a lookup over the task's own context."""

from __future__ import annotations

from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.prompts import task_text
from slmscope.paradigms.react import Harness, ToolMode, agent_prompt, finish, react
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Task
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


def task_tools(task: Task, knowledge: KnowledgeSearch) -> dict[str, Tool]:
    """Every tool, the lookup bound to this task's context (or its prompt, which FinBen rows
    use to carry the context). Where the sandbox's kernel boundary is missing, the python tool
    is left out rather than run weaker (the run record and the cell keys say so)."""
    tools: dict[str, Tool] = {
        "calculator": Calculator(),
        "python": PythonSandbox(),
        "knowledge_search": knowledge,
        "lookup": Lookup(task.context or task.prompt),
    }
    if not availability()[0]:
        del tools["python"]
    return tools


class SingleAgent:
    name = "single"

    def __init__(
        self,
        limits: AgentLimits | None = None,
        knowledge: KnowledgeSearch | None = None,
        mode: ToolMode = "tags",
        harness: Harness = "repair",
    ) -> None:
        self.limits = limits or AgentLimits()
        self.mode, self.harness = mode, harness
        self.knowledge = knowledge or KnowledgeSearch()  # indexed once, on first use

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace:
        tools = task_tools(task, self.knowledge)
        end = await react(
            agent="single",
            system=agent_prompt(SINGLE_ROLE, tools, self.mode, task),
            user=task_text(task),
            tools=tools,
            backend=backend,
            gen=gen,
            limits=self.limits,
            mode=self.mode,
            harness=self.harness,
            task=task,
        )
        return finish(task, end)
