"""The Tool protocol: a name, a description, a JSON schema for its input, and an async run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class ToolError(Exception):
    """A tool call that failed; the message is what the agent is shown as the observation."""


@runtime_checkable
class Tool(Protocol):
    name: str
    description: str

    @property
    def schema(self) -> dict[str, Any]:
        """JSON schema of the input object."""
        ...

    async def run(self, args: Mapping[str, Any]) -> str: ...


def require_str(args: Mapping[str, Any], key: str, tool: str) -> str:
    """The string argument `key`, or a ToolError that says what the tool expects."""
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"{tool} needs a non-empty string field {key!r}")
    return value
