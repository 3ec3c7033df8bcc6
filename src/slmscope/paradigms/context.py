"""Keeping an agent's conversation inside the model's context window.

The loop knows the backend's prompt count at its last call; what it added since is estimated
with the one token counter (metering.usage), plus the chat template's markers per message.
When the next call would not fit, the oldest long observation is shortened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from slmscope.metering.usage import estimate_tokens
from slmscope.models.base import Message

MESSAGE_TOKENS = 8  # what a chat template adds around each message (role markers)


def _chars(messages: Sequence[Message]) -> int:
    return sum(len(m["content"]) + len(json.dumps(m.get("tool_calls", ""))) for m in messages)


def prompt_tokens(messages: Sequence[Message], last_prompt: int, last_count: int) -> int:
    """Prompt size: the backend's count at the last call plus the estimate for the messages
    added since (their text, and the template's markers around each)."""
    new = messages[last_count:] if last_prompt else messages
    added = estimate_tokens(_chars(new)) + MESSAGE_TOKENS * len(new)
    return last_prompt + added


def compact(messages: list[Message], keep_chars: int = 200) -> int:
    """Shorten the oldest long observation; the tokens it removed (0: nothing left)."""
    for message in messages[2:-1]:
        content = message["content"]
        if message["role"] in ("user", "tool") and len(content) > keep_chars + 40:
            message["content"] = content[:keep_chars] + " [...shortened to fit the context]"
            return estimate_tokens(len(content) - len(message["content"]))
    return 0
