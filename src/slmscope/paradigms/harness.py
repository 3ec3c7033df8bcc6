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
repeated action) admitting only a final answer. The loop (react.py) decides which applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from slmscope.models.base import Completion, Message
from slmscope.paradigms.agent_prompts import ToolMode, answer_format
from slmscope.paradigms.protocol import ProtocolError, visible_text
from slmscope.tasks.numeric import parse_numbers
from slmscope.tasks.record import Task
from slmscope.tasks.scoring import extract_answer, match_label, normalize_label, parse_entities

Harness = Literal["strict", "repair", "constrained"]
HARNESSES: tuple[str, ...] = Harness.__args__  # type: ignore[attr-defined]
# Bumped when what `repair` and `constrained` do changes: their samples get new cell keys
# (`strict` stays the study's protocol and keeps its keys).
REPAIR_REVISION = 3


def repairs(harness: Harness) -> bool:
    """Whether the harness repairs turns (`constrained` is `repair` with a grammar on top)."""
    return harness != "strict"


_FINAL_LINE = re.compile(r"^\W*final[ _]answer\W*[:=]\s*(?P<answer>.+)$", re.IGNORECASE)


def untagged_answer(text: str, task: Task, *, insisted: bool = False) -> str | None:
    """The answer an untagged reply unambiguously gives (`repair` only), else None; one that
    `insisted` (repeated after its repair) is read as the base paradigm reads any reply."""
    said = visible_text(text)
    if insisted:
        return extract_answer(task, said)
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    for line in reversed(lines):
        found = _FINAL_LINE.match(line)
        if found:
            answer = found["answer"]
            while (again := _FINAL_LINE.match(answer)) is not None:
                answer = again["answer"]
            return answer.strip().strip("*").strip() or None
    if task.task_type == "ner":
        entities = sum(parse_entities(said).values())
        return "\n".join(lines) if lines and entities == len(lines) else None
    if len(lines) != 1:
        return None
    reply = lines[0].strip(" .*`\"'")
    if task.choices:
        choice = match_label(reply, task.choices)
        return choice if choice and normalize_label(reply) == normalize_label(choice) else None
    if task.scorer == "numeric_match":
        numbers = parse_numbers(reply)
        return reply if len(numbers) == 1 and len(reply) <= len(numbers[0].text) + 3 else None
    return None


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


def unreadable_answer_message(answer: str, task: Task) -> str:
    """The repair of a final answer that is not in the task's format (a placeholder, a
    fragment of a message, a label the task does not have)."""
    shown = " ".join(answer.split())[:120]
    return (
        f'"{shown}" is not an answer in the format of this task. {answer_format(task)} '
        f"Now {_ANSWER}."
    )


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
