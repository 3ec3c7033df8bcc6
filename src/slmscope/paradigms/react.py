"""The ReAct loop shared by the agents: think, act with a tool, observe, repeat, answer.

`react` reads top to bottom: each model call becomes a `Turn` (what the model did, what goes
back to it, and whether the loop ends), and the loop only keeps the count. It ends with an
outcome from the taxonomy: a final answer (`ok`), or the reason there is none. The multi-agent
supervisor runs this same loop with the specialists as its tools, naming its own failures.

The harness (harness.py) is how the protocol is enforced; it is recorded with every result.
Under `repair` each repair message adds a call, at most `max_repairs` per loop.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from slmscope.models.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    Completion,
    ConstraintUnsupported,
    GenerationConfig,
    Message,
    ToolsUnsupported,
)
from slmscope.paradigms.agent_prompts import ToolMode, copied_shape, example_actions, tool_specs
from slmscope.paradigms.base import OnStep, failed_call
from slmscope.paradigms.context import compact, prompt_tokens
from slmscope.paradigms.harness import (
    ACT_FIRST,
    ACT_FIRST_NATIVE,
    CUT_OFF,
    DEFAULT_HARNESS,
    INPUT_CLOSED,
    Harness,
    Phase,
    budget_end,
    cut_off_note,
    feedback,
    harness_named,
    with_note,
)
from slmscope.paradigms.loop_records import (
    AgentLimits,
    FailureNames,
    HandOff,
    LoopEnd,
    StopLoop,
    action_key,
)
from slmscope.paradigms.protocol import (
    ProtocolError,
    Reply,
    parse_native,
    parse_reply,
)
from slmscope.paradigms.tool_run import run_tool
from slmscope.paradigms.trace import Outcome, Step, Trace
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tools.base import Tool

FREE_TEXT = AnswerFormat("free")

__all__ = ["finish", "react"]

OBSERVATION_STOP = ("<observation>",)  # the model must not write its own observations


@dataclass(frozen=True)
class Turn:
    """What one model call came to: its step, what goes back to the model, and either the end
    of the loop or the failure the sample is left with if no later turn does better."""

    step: Step
    feedback: tuple[Message, ...] = ()
    end: LoopEnd | None = None
    failure: tuple[Outcome, str] | None = None
    repair: bool = False  # the feedback is a repair message
    answer_next: bool = False  # the next turn may only answer (a grammar enforces it)
    replaces: bool = False  # the feedback takes the place of the last message sent
    action_key: str | None = None
    result: str | None = None  # the tool's observation, when it ran without error
    ran: bool = False  # a real tool or specialist ran (an error from it included; no copy)
    inner: tuple[Step, ...] = ()  # a hand-off's specialist steps, made before `step` returns


@dataclass(frozen=True)
class Loop:
    """One loop's fixed settings."""

    agent: str
    tools: Mapping[str, Tool]
    gen: GenerationConfig
    limits: AgentLimits
    names: FailureNames
    mode: ToolMode
    harness: Harness
    examples: tuple[str, ...]  # action keys of the prompt's examples
    repeat_answers: bool  # a repeated hand-off's earlier answer is the team's (harness says)
    fmt: AnswerFormat  # the format a final or untagged answer is read in
    task: str  # the user message: the task as the agent was given it


def _shown(reply: Completion) -> str:
    """The step's output: the text, and the native tool calls as the model wrote them."""
    calls = "".join(f"\n[tool call] {c.name} {c.arguments}" for c in reply.tool_calls)
    return (reply.text + calls).strip() if calls else reply.text


async def _turn(
    loop: Loop,
    reply: Completion,
    step: partial[Step],
    seen: Mapping[str, int],
    results: Mapping[str, str],
    *,
    can_repair: bool,
    repaired_reply: str | None,
    acted: bool,
) -> Turn:
    """Read one reply and act on it, as the harness says (`repaired_reply`: the reply the last
    repair quoted). While the harness holds the agent to act first and nothing has run yet
    (`acted` is false), an answer is sent back, as long as repairs are left."""
    harness = loop.harness
    held = harness.acts_first() and not acted and can_repair
    cut = reply.finish_reason == "length"  # the token budget ended the reply, not the model
    try:
        parsed: Reply = (
            parse_native(reply.text, [(c.name, c.arguments) for c in reply.tool_calls])
            if loop.gen.tools
            else parse_reply(reply.text)
        )
    except ProtocolError as err:
        insisted = repaired_reply is not None and reply.text.strip() == repaired_reply.strip()
        bare = (
            harness.untagged(reply.text, loop.fmt, insisted=insisted)
            if err.reason == "no_action_or_answer" and not held
            else None
        )
        if bare is not None:
            return Turn(step(error="untagged_answer"), end=LoopEnd(bare, "ok"))
        outcome: Outcome = (
            "no_final_answer" if err.reason == "no_action_or_answer" else "malformed_action"
        )
        note, repair = harness.unreadable(err, reply.text, loop.mode, can_repair=can_repair)
        recut = cut and insisted  # greedy decoding would cut the same reply again
        if cut and (repair or recut):
            note = cut_off_note(reply.text, loop.gen.max_tokens, again=recut)
        back = feedback(reply, loop.mode, note)
        once = recut and not (loop.mode == "native" and reply.tool_calls)  # ids must match
        return Turn(
            step(error="cut_off" if cut else err.reason),
            back[-1:] if once else back,  # the same cut reply is not sent back a second time
            failure=(outcome, str(err)),
            repair=repair,
            answer_next=recut,
            replaces=once,
        )
    if (
        cut
        and can_repair
        and parsed.final_answer is not None
        and "</final_answer>" not in reply.text
    ):
        note = CUT_OFF.format(tokens=loop.gen.max_tokens)  # an answer the budget cut short
        why: tuple[Outcome, str] = ("no_final_answer", "the answer was cut off")
        return Turn(step(error="cut_off"), feedback(reply, loop.mode, note), None, why, True)
    if parsed.final_answer is not None and held:
        note = ACT_FIRST_NATIVE if loop.mode == "native" else ACT_FIRST
        return Turn(
            step(error="answer_before_action"),
            feedback(reply, loop.mode, note),
            failure=("no_final_answer", "the agent answered before it called a tool"),
            repair=True,
        )
    if parsed.final_answer is not None:
        final = parsed.final_answer
        note_or_none = harness.bad_answer(final, loop.fmt, can_repair=can_repair)
        if note_or_none is not None:
            return Turn(
                step(error="unreadable_answer"),
                feedback(reply, loop.mode, note_or_none),
                failure=("no_final_answer", f"no answer could be read from {final[:80]!r}"),
                repair=True,
            )
        return Turn(step(), end=LoopEnd(final, "ok"))
    action = parsed.action
    assert action is not None
    key = action_key(action.tool, action.input)
    shape = copied_shape(action.tool, action.input, loop.tools, loop.task, numeric=loop.fmt.numeric)
    shown = partial(
        step,
        tool=action.tool,
        tool_input=json.dumps(action.input),
        handoff=isinstance(loop.tools.get(action.tool), HandOff),
        copied=shape,
    )
    copied = key in loop.examples
    refusal = harness.copied(can_repair=can_repair) if copied else None
    if refusal is not None:
        return Turn(
            shown(error="example_copy", observation=refusal),
            feedback(reply, loop.mode, refusal),
            failure=("max_steps", "the agent copied the prompt's example action"),
            repair=True,
        )
    times = seen.get(key, 0) + 1
    if times > 1 and loop.repeat_answers and key in results:
        return Turn(shown(error="repeated_action"), end=LoopEnd(results[key], "ok"))
    again = harness.repeated(results.get(key), can_repair=can_repair) if times > 1 else None
    if again is not None:
        return Turn(
            shown(error="repeated_action", observation=again),
            feedback(reply, loop.mode, again),
            failure=(loop.names.repeated, f"repeated action {key}"),
            repair=True,
            answer_next=True,
        )
    inner: tuple[Step, ...] = ()
    if times > 1:
        observation = (
            "error: you already ran exactly this action; its result is above. "
            "Answer now, or try something different."
        )
        error: str | None = "repeated_action"
        failure = (loop.names.repeated, f"repeated action {key}")
    else:
        try:
            observation, error, failure, inner = await run_tool(
                loop.tools, loop.limits, loop.names, action
            )
            if reply.raw_usage.get("grammar_closed") == "input":  # the grammar ended the input
                observation += INPUT_CLOSED.format(tokens=loop.gen.max_tokens)
        except StopLoop as stop:
            end = LoopEnd(stop.answer, stop.outcome, str(stop))
            return Turn(shown(error=stop.outcome), end=end, action_key=key)
    record = shown(observation=observation, error="example_copy" if copied else error)
    ran = error in (None, "tool_error") and not copied and not shape
    if times > loop.limits.max_repeats:
        end = LoopEnd(None, loop.names.repeated, f"the same action repeated: {key}")
        return Turn(record, end=end, action_key=key, inner=inner)
    return Turn(
        record,
        feedback(reply, loop.mode, observation),
        failure=failure if error else None,
        action_key=key,
        result=observation if error is None else None,
        inner=inner,
        ran=ran,
    )


async def react(
    *,
    agent: str,
    system: str,
    user: str,
    tools: Mapping[str, Tool],
    backend: Backend,
    gen: GenerationConfig,
    limits: AgentLimits,
    harness: Harness | str = DEFAULT_HARNESS,
    fmt: AnswerFormat = FREE_TEXT,
    names: FailureNames | None = None,
    mode: ToolMode = "tags",
    repeat_answers: bool = False,
    on_step: OnStep | None = None,
) -> LoopEnd:
    """Run the loop; the LoopEnd carries every model call as a Step, in the order made (a
    hand-off's specialist steps before the supervisor step that made it). `fmt` is the
    problem's answer format; `on_step` sees each step as it is made."""
    harness = harness_named(harness) if isinstance(harness, str) else harness
    specs = tool_specs(tools, strict=harness.tool_specs_strict()) if mode == "native" else []
    loop = Loop(
        agent=agent,
        tools=tools,
        gen=dataclasses.replace(
            gen,
            max_tokens=limits.max_tokens_per_turn,
            stop=() if specs else OBSERVATION_STOP,
            tools=tuple(specs),
        ),
        limits=limits,
        names=names or FailureNames(),
        mode=mode,
        harness=harness,
        examples=tuple(action_key(t, a) for t, a in example_actions(tools)),
        repeat_answers=repeat_answers and harness.repeat_is_answer(),
        fmt=fmt,
        task=user,
    )
    messages: list[Message] = [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ]
    steps: list[Step] = []
    seen: dict[str, int] = {}
    results: dict[str, str] = {}
    spent = repaired = calls = last_prompt = last_count = 0
    repairing = answer_now = acted = False
    failure: tuple[Outcome, str] = ("max_steps", f"no final answer in {limits.max_turns} turns")
    configs = harness.turns(loop.gen, tools, fmt, mode)
    offered = tuple(tools)

    def made(step: Step) -> None:
        steps.append(step)
        if on_step:
            on_step(step)

    while calls < limits.max_turns + repaired:
        calls += 1
        # Context guard: shorten old observations, else end cleanly rather than overflow.
        while (
            prompt_tokens(messages, last_prompt, last_count) + limits.max_tokens_per_turn
            > limits.context_window
        ):
            removed = compact(messages)
            if not removed:
                error = f"the conversation no longer fits the {limits.context_window}-token window"
                return LoopEnd(None, "context_overflow", error, tuple(steps), offered)
            last_prompt = max(0, last_prompt - removed)
        sent = tuple(m.copy() for m in messages)  # later compaction must not rewrite the record
        try:
            last = calls == limits.max_turns + repaired or answer_now
            phase: Phase = "answer" if last else "turn" if acted else "act"
            reply = await backend.chat(messages, configs[phase])
        except (BackendUnavailable, ToolsUnsupported, ConstraintUnsupported):
            raise
        except BackendError as err:
            made(Step(agent, calls, sent, "", None, None, error=str(err)))
            return LoopEnd(None, failed_call(err), str(err), tuple(steps), offered)
        spent += reply.usage.total_tokens
        last_prompt, last_count = reply.usage.prompt_tokens, len(messages)
        step = partial(
            Step,
            agent,
            calls,
            sent,
            _shown(reply),
            reply.usage,
            reply.timings,
            energy=reply.energy,
            cache_hit=reply.cache_hit,
            repair=repairing,
            cut=budget_end(reply.text, reply.finish_reason, reply.raw_usage.get("grammar_closed")),
        )
        turn = await _turn(
            loop,
            reply,
            step,
            seen,
            results,
            can_repair=harness.repairs and repaired < limits.max_repairs,
            repaired_reply=steps[-1].output if repairing and steps else None,
            acted=acted,
        )
        steps.extend(turn.inner)  # the hand-off's steps were seen (on_step) as they were made
        made(turn.step)
        if turn.end is not None:
            return dataclasses.replace(turn.end, steps=tuple(steps), tools=offered)
        if turn.action_key is not None:
            seen[turn.action_key] = seen.get(turn.action_key, 0) + 1
            if turn.result is not None:
                results[turn.action_key] = turn.result
        acted = acted or turn.ran
        failure = turn.failure or failure
        repaired += turn.repair
        repairing, answer_now = turn.repair, turn.answer_next
        if spent >= limits.token_budget:
            error = f"token budget of {limits.token_budget} spent"
            return LoopEnd(None, "max_steps", error, tuple(steps), offered)
        if turn.replaces:
            messages.pop()
            last_count -= 1
        note = harness.last_turn_note() if calls + 1 == limits.max_turns + repaired else ""
        messages += with_note(turn.feedback, note) if note else turn.feedback
    return LoopEnd(None, failure[0], failure[1], tuple(steps), offered)


def finish(fmt: AnswerFormat, end: LoopEnd) -> Trace:
    """The sample's Trace: the final answer read in the problem's format, or the loop's
    failure."""
    if end.outcome != "ok" or end.answer is None:
        return Trace(end.steps, None, end.outcome, end.error, tools=end.tools)
    answer = fmt.read(end.answer)
    if answer is None:
        return Trace(
            end.steps,
            None,
            "no_final_answer",
            f"no answer could be read from the final answer {end.answer[:80]!r}",
            tools=end.tools,
        )
    return Trace(end.steps, answer, "ok", tools=end.tools)
