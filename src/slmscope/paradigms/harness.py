"""How each harness reads an agent's turn and what goes back to it.

`strict` (the reference study's protocol) answers a turn it cannot read with "not understood".
`repair` first reads an untagged turn as the base paradigm reads any reply: an unambiguous
`Final answer: X` line, or a reply that is nothing but an answer in the task's format (one of
its choices, one number, `entity, TYPE` lines), ends the loop with that answer (the step is
marked `untagged_answer`), and so does a reply that repeats unchanged the one its repair quoted
(the model was shown how to mark it as its answer, and said it again). Any other unreadable
turn gets one targeted message that quotes it; a final answer that is not in the task's format
is sent back with the format; an action copied from the prompt's example is sent back instead
of run; an action the agent already ran is answered with its earlier result and a call to
answer now; and the model is told when its next turn is its last. Small models copy what they
are told, so no message of `repair` holds a placeholder (`ANSWER`, `...`): a tag it writes out
is empty, or holds the model's own reply. `constrained` does all `repair` does, and decodes
every turn under a grammar (constraint.py), the last allowed turn (and the turn after a
repeated action) admitting only a final answer. `act` does all `constrained` does, and holds
an agent to act before it answers: until a tool (or specialist) has run, its turns admit only
an action (the grammar in tags mode, `tool_choice: required` in native mode), and a final
answer that comes anyway is sent back. Each harness is an object whose methods say what it
does; the loop (react.py) asks it and never tests its name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from slmscope.errors import ConfigError
from slmscope.models.base import Completion, GenerationConfig, Message
from slmscope.paradigms.agent_prompts import ToolMode
from slmscope.paradigms.constraint import agent_constraint
from slmscope.paradigms.protocol import ProtocolError, visible_text
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tasks.labels import parse_entities
from slmscope.tools.base import Tool

Phase = Literal["act", "turn", "answer"]  # before any tool ran; an ordinary turn; answer only
PHASES: tuple[Phase, ...] = ("act", "turn", "answer")

_FINAL_LINE = re.compile(r"^\W*final[ _]answer\W*[:=]\s*(?P<answer>.+)$", re.IGNORECASE)


class Harness:
    """`strict`: the reference study's protocol. Each behaviour is a method, so the loop
    (react.py) asks the harness what to do and never tests its name."""

    name = "strict"
    revision = 1  # part of a repairing harness's cell keys: bumped when what it does changes

    def key_part(self) -> str:
        """What the harness adds to a cell key (`strict` keeps the form from before harnesses)."""
        return ""

    @property
    def repairs(self) -> bool:
        return False

    def untagged(self, text: str, fmt: AnswerFormat, *, insisted: bool) -> str | None:
        """The answer an untagged reply unambiguously gives, else None."""
        return None

    def unreadable(
        self, err: ProtocolError, text: str, mode: ToolMode, *, can_repair: bool
    ) -> tuple[str, bool]:
        """(what goes back, whether it is a repair) for a turn neither action nor answer."""
        return not_understood(err, mode, repairing=False), False

    def bad_answer(self, answer: str, fmt: AnswerFormat, *, can_repair: bool) -> str | None:
        """The repair of a final answer not in the task's format; None accepts it as it is."""
        return None

    def copied(self, *, can_repair: bool) -> str | None:
        """The reply to an action copied from the prompt's example; None runs it."""
        return None

    def repeated(self, result: str | None, *, can_repair: bool) -> str | None:
        """The repair of an action already run; None gives the plain repeat error."""
        return None

    def repeat_is_answer(self) -> bool:
        """Whether a repeated hand-off's earlier answer is the team's (the supervisor has
        nothing to add)."""
        return False

    def last_turn_note(self) -> str:
        return ""

    def turns(
        self, gen: GenerationConfig, tools: Mapping[str, Tool], fmt: AnswerFormat, mode: ToolMode
    ) -> dict[Phase, GenerationConfig]:
        """How a turn is generated in each phase."""
        return dict.fromkeys(PHASES, gen)

    def acts_first(self) -> bool:
        """Whether an agent must call a tool before it may answer."""
        return False

    def needs_required_tools(self) -> bool:
        """Native mode: whether its turns ask the server for `tool_choice: required`."""
        return False

    def tool_specs_strict(self) -> bool:
        """Native mode: whether the tools go to the server as strict schemas."""
        return False

    def needs_grammar(self) -> bool:
        """Whether its tag turns are decoded under a grammar (a server must apply them)."""
        return False


class Repair(Harness):
    """`repair`: targeted repairs, bounded per loop (see the module docstring)."""

    name = "repair"
    # r4: a cut action is told its input was too long; the same cut reply again ends in an answer;
    # r5: the same cut reply again is not sent back, the note before it asks for the answer
    revision = 5

    def key_part(self) -> str:
        return f"|{self.name}.r{self.revision}"

    @property
    def repairs(self) -> bool:
        return True

    def untagged(self, text: str, fmt: AnswerFormat, *, insisted: bool) -> str | None:
        said = visible_text(text)
        if insisted:
            return fmt.read(said)
        lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
        for line in reversed(lines):
            found = _FINAL_LINE.match(line)
            if found:
                answer = found["answer"]
                while (again := _FINAL_LINE.match(answer)) is not None:
                    answer = again["answer"]
                return answer.strip().strip("*").strip() or None
        if fmt.kind == "entities":
            entities = sum(parse_entities(said).values())
            return "\n".join(lines) if lines and entities == len(lines) else None
        return fmt.read_bare(lines[0]) if len(lines) == 1 else None

    def unreadable(
        self, err: ProtocolError, text: str, mode: ToolMode, *, can_repair: bool
    ) -> tuple[str, bool]:
        if can_repair:
            return repair_message(err, text, mode), True
        return not_understood(err, mode, repairing=True), False

    def bad_answer(self, answer: str, fmt: AnswerFormat, *, can_repair: bool) -> str | None:
        if not can_repair or fmt.read(answer) is not None:
            return None
        shown = " ".join(answer.split())[:120]
        return (
            f'"{shown}" is not an answer in the format of this task. {fmt.instruction()} '
            f"Now {_ANSWER}."
        )

    def copied(self, *, can_repair: bool) -> str | None:
        return COPY_MESSAGE if can_repair else None

    def repeated(self, result: str | None, *, can_repair: bool) -> str | None:
        return repeat_message(result) if can_repair else None

    def repeat_is_answer(self) -> bool:
        return True

    def last_turn_note(self) -> str:
        return LAST_TURN_NOTE


class Constrained(Repair):
    """`constrained`: `repair`, with every tag turn decoded under a grammar (constraint.py)."""

    name = "constrained"
    # r5: a text input the token budget is about to cut is closed, and the action runs; r6: as
    # repair's r5
    revision = 6

    def turns(
        self, gen: GenerationConfig, tools: Mapping[str, Tool], fmt: AnswerFormat, mode: ToolMode
    ) -> dict[Phase, GenerationConfig]:
        """Tag turns get their grammar; native turns, whose calls the server's own tool-call
        grammar holds to the (strict) schemas, get `tool_choice: none` where only an answer
        may come (servers refuse a custom grammar beside tools)."""
        if mode == "native":
            return {"act": gen, "turn": gen, "answer": dataclasses.replace(gen, tool_choice="none")}
        turn = dataclasses.replace(gen, constraint=agent_constraint(tools, fmt, final_only=False))
        answer = dataclasses.replace(gen, constraint=agent_constraint(tools, fmt, final_only=True))
        return {"act": turn, "turn": turn, "answer": answer}

    def tool_specs_strict(self) -> bool:
        return True

    def needs_grammar(self) -> bool:
        return True


class Act(Constrained):
    """`act`: `constrained`, with the agent held to call a tool (or hand off) before it may
    answer; after the first observation it goes on as under `constrained`."""

    name = "act"
    # r2: held until a real tool ran (not a copy, not a refused hand-off); r3: as repair's r4;
    # r4: as constrained's r5; r5: as repair's r5
    revision = 5

    def turns(
        self, gen: GenerationConfig, tools: Mapping[str, Tool], fmt: AnswerFormat, mode: ToolMode
    ) -> dict[Phase, GenerationConfig]:
        phases = super().turns(gen, tools, fmt, mode)
        if mode == "native":
            first = dataclasses.replace(gen, tool_choice="required")
        else:
            first = dataclasses.replace(gen, constraint=agent_constraint(tools, fmt, act_only=True))
        return {**phases, "act": first}

    def acts_first(self) -> bool:
        return True

    def needs_required_tools(self) -> bool:
        return True


HARNESSES: dict[str, Harness] = {h.name: h for h in (Harness(), Repair(), Constrained(), Act())}
DEFAULT_HARNESS = "act"  # the one default of run, sweep, quickstart and the library


def harness_named(name: str) -> Harness:
    """The harness called `name`, or a ConfigError naming the known ones."""
    if name not in HARNESSES:
        raise ConfigError(f"unknown harness {name!r}; available: {', '.join(HARNESSES)}")
    return HARNESSES[name]


def feedback(reply: Completion, mode: ToolMode, note: str) -> tuple[Message, ...]:
    """What goes back to the model after a turn: its own reply, then the note (an observation
    tag in a user message, or in native mode one `tool` message per call it made)."""
    if mode == "tags" or not reply.tool_calls:
        return (
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": f"<observation>{note}</observation>"},
        )
    first, *rest = reply.tool_calls
    return (
        {
            "role": "assistant",
            "content": reply.text,
            "tool_calls": [c.to_message() for c in reply.tool_calls],
        },
        {"role": "tool", "tool_call_id": first.id, "content": note},
        *(
            Message(role="tool", tool_call_id=c.id, content="not run: one tool call per turn")
            for c in rest
        ),
    )


def _call(mode: ToolMode) -> str:
    return "call one tool" if mode == "native" else "call one tool in <action></action>"


_ANSWER = "give your final answer inside <final_answer></final_answer>"


QUOTE_CHARS = 600  # a reply up to this long is quoted back whole (a summary fits)


def not_understood(err: ProtocolError, mode: ToolMode, *, repairing: bool) -> str:
    """The plain refusal: the study's under `strict`; under a repairing harness past its bound
    of repairs, one whose tags are empty (nothing in them to copy)."""
    if repairing:
        return f"Not understood ({err.reason}). {_call(mode).capitalize()}, or {_ANSWER}."
    return f"Not understood ({err}). " + (
        "Call one tool, or reply with the answer in <final_answer></final_answer>."
        if mode == "native"
        else "Use <action>{...}</action> or <final_answer>...</final_answer>."
    )


def repair_message(err: ProtocolError, text: str, mode: ToolMode) -> str:
    """The targeted repair of a turn that was neither an action nor a final answer."""
    if err.reason == "no_action_or_answer":
        said = " ".join(visible_text(text).split())
        if said and len(said) <= QUOTE_CHARS:
            return (
                f'If "{said}" is your answer, write <final_answer>{said}</final_answer>. '
                f"Otherwise {_call(mode)}."
            )
        return (
            "Your reply had neither an action nor a final answer. If you know the answer, "
            f"{_ANSWER}. Otherwise {_call(mode)}."
        )
    if err.reason == "empty_final_answer":
        return "Your final answer was empty. Write the answer itself inside the final_answer tags."
    return (
        f"Your tool call could not be read ({err.detail}). Try again: {_call(mode)}, its input "
        f"a JSON object, or {_ANSWER}."
    )


CUT_OFF = (
    "Your reply was cut off at {tokens} tokens, before it ended. Keep the thought to one "
    "sentence, then call one tool or give your final answer."
)
CUT_OFF_ACTION = (
    "Your action was cut off at {tokens} tokens, before its input ended, so it did not run. "
    "Call the tool again with a much shorter input (one expression, or a few lines of code), "
    "or give your final answer."
)


INPUT_CLOSED = (
    "\n(Your input reached the {tokens}-token limit and ran as far as it got. Keep inputs short.)"
)


def budget_end(text: str, finish_reason: str | None, closed: str | None) -> str | None:
    """How the turn's token budget ended it, if it did: `action` (cut inside an action, which
    therefore did not run), `reply` (cut in a thought or an answer), or where a closing grammar
    ended it first (constraint.py) what it closed, `input` (the action ran) or `thought`."""
    if closed:
        return closed
    if finish_reason != "length":
        return None
    if "<action>" in text and "</action>" not in text:
        return "action"
    return None if "</final_answer>" in text or "</action>" in text else "reply"  # ended in time


CUT_AGAIN = " The same reply was cut off again. Write your own final answer to the task now."


def cut_off_note(text: str, tokens: int, *, again: bool = False) -> str:
    """The repair of a reply the token budget cut: inside an action, the input was too long (a
    1.5B model's pandas program for five prices); else the thought was. `again`: the same cut
    reply a second time, which is not sent back (react.py); the note asks for the answer."""
    note = (CUT_OFF_ACTION if "<action>" in text else CUT_OFF).format(tokens=tokens)
    return note + CUT_AGAIN if again else note


ACT_FIRST = (
    "Do not answer yet: first call one of your tools on your own task, in <action></action>, "
    "and read what it returns."
)
ACT_FIRST_NATIVE = "Do not answer yet: first call one of your tools on your own task."

COPY_MESSAGE = (
    "That action is the prompt's example about umbrella sales, not your task. Call a tool with "
    "inputs from your own task, or give your final answer."
)


def repeat_message(result: str | None) -> str:
    """The repair of an action the agent already ran: its result again, and a call to answer
    (under `constrained` the next turn's grammar admits only the final answer)."""
    got = f"It returned: {result}" if result is not None else "Its result (an error) is above."
    return f"You already ran exactly this action. {got} Do not run it again: {_ANSWER} now."


LAST_TURN_NOTE = " Your next turn is your last: give your final answer then."


def with_note(feedback: Sequence[Message], note: str) -> list[Message]:
    """The feedback with a note added to its last message (inside its observation tag)."""
    *rest, last = feedback
    content = last["content"]
    if content.endswith("</observation>"):
        content = content.removesuffix("</observation>") + note + "</observation>"
    else:
        content += note
    return [*rest, {**last, "content": content}]
