"""Safe arithmetic for agents: a whitelisted AST, no names but the finance functions below.

Accepts numbers (with `%`, currency signs and thousands separators), + - * / // % **,
parentheses, and growth(a, b), cagr(start, end, years), ratio(a, b), average(...), round(x, n),
abs, min, max, sqrt, log. Exponents and results are bounded so no input can hang or exhaust
memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from slmscope.tools.base import ToolError, require_str

MAX_CHARS = 500
MAX_NODES = 200
MAX_EXPONENT = 100
MAX_MAGNITUDE = 1e100


def _growth(old: float, new: float) -> float:
    """Percentage change from old to new."""
    return (new - old) / old * 100


def _cagr(start: float, end: float, years: float) -> float:
    """Compound annual growth rate, in percent."""
    return float(((end / start) ** (1 / years) - 1) * 100)


def _average(*values: float) -> float:
    if not values:
        raise ToolError("average() needs at least one value")
    return sum(values) / len(values)


FUNCTIONS: dict[str, Callable[..., float]] = {
    "growth": _growth,
    "cagr": _cagr,
    "ratio": operator.truediv,
    "average": _average,
    "round": round,
    "abs": abs,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_THOUSANDS = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+)(?![\d,])")


def _prepare(expression: str) -> str:
    text = expression.strip().replace("\u00d7", "*").replace("\u00f7", "/").replace("^", "**")
    text = re.sub(r"[$€£¥]", "", text)
    # "1,234,567" is a number unless it sits inside a call's argument list.
    if "(" not in text:
        text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    return re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", text)


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression; ToolError for anything not allowed."""
    if len(expression) > MAX_CHARS:
        raise ToolError(f"expression longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(_prepare(expression), mode="eval")
    except SyntaxError as err:
        raise ToolError(f"not an arithmetic expression: {err.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"expression has more than {MAX_NODES} parts")
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, ValueError) as err:
        raise ToolError(f"math error: {err}") from None
    if isinstance(value, complex) or not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ToolError("result is not a finite real number within bounds")
    return float(value)


def _eval(node: ast.expr) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (
            abs(right) > MAX_EXPONENT or abs(left) > MAX_MAGNITUDE ** (1 / 4)
        ):
            raise ToolError(f"exponent or base too large (limit: exponent {MAX_EXPONENT})")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, int | float) and abs(result) > MAX_MAGNITUDE:
            raise ToolError("intermediate result out of bounds")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn = FUNCTIONS.get(node.func.id)
        if fn is None:
            raise ToolError(f"unknown function {node.func.id!r}; allowed: {', '.join(FUNCTIONS)}")
        args = [_eval(a) for a in node.args]
        try:
            return fn(*args)
        except TypeError as err:  # growth(5): a call with the wrong number of arguments
            raise ToolError(f"{node.func.id}: {err}") from None
    if isinstance(node, ast.Name):
        raise ToolError(f"names are not allowed ({node.id!r}); use numbers")
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def format_number(value: float) -> str:
    return f"{value:.10g}"


class Calculator:
    name = "calculator"
    description = (
        "Evaluate an arithmetic expression. Supports + - * / ** %, parentheses, and "
        "growth(old, new) (percent change), cagr(start, end, years), ratio(a, b), "
        "average(x, ...), round(x, n), abs, min, max, sqrt, log."
    )
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. growth(120, 150)"}},
        "required": ["expression"],
        "additionalProperties": False,
    }

    async def run(self, args: Mapping[str, Any]) -> str:
        return format_number(evaluate(require_str(args, "expression", self.name)))
