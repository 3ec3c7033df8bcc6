"""Safe arithmetic for agents: a whitelisted AST, no names but the finance functions below.

Numbers are read as financial tables write them, before the expression is parsed:
- thousands: 1 to 3 digits, then groups of a comma and exactly three digits, is one number
  (`1,784`, `12,345,678.5`); any other comma separates arguments (`growth(1784, 1495)`,
  `max(1,78)`). The one ambiguity, `max(1,784)` (one number, or two?), is refused with a
  message: write `max(1, 784)`.
- currency: the signs $ € £ ¥ ₹ and the codes USD EUR GBP JPY CNY CHF CAD AUD INR are dropped
  (`$1,784`, `€ 3.2`, `USD 100`, `-$9.8`).
- scale words after a number multiply it: thousand, million, billion, trillion, mn, bn
  (`$9.8 million`). Single letters (k, m, b) are not read: `m` is million or thousand.
- percent: `%` after a number divides it by 100 (`22.9%` is 0.229, `15% * 200` is 30); there is
  no remainder operator, so `%` anywhere else is an error.
- negatives in parentheses: a plain number in parentheses is negative when a currency sign, a
  scale word or `%` marks it as a table's figure (`$(9.8) million` is -9,800,000, `($9.8)` and
  `(5.2)%` are negative); bare `(9.8)` is grouping, as in `(55 - 40) / 40`, and is 9.8.

Then + - * / // **, parentheses and the functions in FUNCTIONS are evaluated. Exponents,
sizes and results are bounded so no input can hang or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from slmscope.tools.base import ToolError, require_str

MAX_CHARS = 500
MAX_NODES = 200
MAX_EXPONENT = 100
MAX_MAGNITUDE = 1e100
MAX_DIGITS = 15  # round(x, n): 10**n is computed, so n must stay small
VARIADIC = ("sum", "min", "max", "average")
_GROUPED_ONLY = re.compile(r"\b(" + "|".join(VARIADIC) + r")\(\s*\d{1,3}(?:,\d{3})+\s*\)")


def _growth(old: float, new: float) -> float:
    """Percentage change from old to new."""
    return (new - old) / old * 100


def _cagr(start: float, end: float, years: float) -> float:
    """Compound annual growth rate, in percent."""
    return float(((end / start) ** (1 / years) - 1) * 100)


def _needs_values(name: str, values: tuple[float, ...]) -> None:
    if not values:
        raise ToolError(f"{name}() needs at least one value")


def _average(*values: float) -> float:
    _needs_values("average", values)
    return sum(values) / len(values)


def _sum(*values: float) -> float:
    _needs_values("sum", values)
    return sum(values)


def _min(*values: float) -> float:
    _needs_values("min", values)
    return min(values)


def _max(*values: float) -> float:
    _needs_values("max", values)
    return max(values)


def _round(value: float, digits: float = 0) -> float:
    if not float(digits).is_integer() or abs(digits) > MAX_DIGITS:
        raise ToolError(f"round: the number of digits must be a whole number within ±{MAX_DIGITS}")
    return round(value, int(digits))


FUNCTIONS: dict[str, Callable[..., float]] = {
    "growth": _growth,
    "cagr": _cagr,
    "ratio": operator.truediv,
    "average": _average,
    "sum": _sum,
    "round": _round,
    "abs": abs,
    "min": _min,
    "max": _max,
    "sqrt": math.sqrt,
    "log": math.log,
}
USAGE: dict[str, str] = {
    "growth": "growth(old, new)",
    "cagr": "cagr(start, end, years)",
    "ratio": "ratio(a, b)",
    "average": "average(x, ...)",
    "sum": "sum(x, ...)",
    "round": "round(x, n)",
    "abs": "abs(x)",
    "min": "min(x, ...)",
    "max": "max(x, ...)",
    "sqrt": "sqrt(x)",
    "log": "log(x) or log(x, base)",
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

SCALES: dict[str, int] = {
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
    "mn": 10**6,
    "bn": 10**9,
}
_SPACES = re.compile(r"[\u00a0\u2009\u202f]")
_CODES = re.compile(r"(?<![A-Za-z])(?:US\$|USD|EUR|GBP|JPY|CNY|CHF|CAD|AUD|INR)(?![A-Za-z])", re.I)
_SIGNS = re.compile(r"[€£¥₹]")
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d)")
_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
_SCALE = r"(?:" + "|".join(SCALES) + r")(?![A-Za-z])"
_PERCENT = r"%(?!\s*[\w.($])"  # a % with no operand after it
_NEGATIVE = re.compile(
    rf"(?<![\w).])(?P<pre>\$\s*)?\(\s*(?P<inner>\$\s*)?(?P<num>{_NUM})\s*\)"
    rf"(?P<post>\s*(?:{_SCALE}|{_PERCENT}))?",
    re.I,
)
_SCALED = re.compile(rf"(?<![\w.])(?P<num>{_NUM})\s*(?P<scale>{_SCALE})", re.I)
_SCALED_GROUP = re.compile(rf"\)\s*(?P<scale>{_SCALE})", re.I)
_PERCENTED = re.compile(rf"(?<![\w.])(?P<num>{_NUM})\s*{_PERCENT}")


def _negative(m: re.Match[str]) -> str:
    if not (m["pre"] or m["inner"] or m["post"]):
        return m[0]  # bare (9.8): grouping
    return f"(-{m['num']}{m['post'] or ''})"


def _prepare(expression: str) -> str:
    """The expression with table notation turned into plain Python arithmetic."""
    text = _SPACES.sub(" ", expression.strip())
    for sign, plain in (("\u00d7", "*"), ("\u00f7", "/"), ("\u2212", "-"), ("^", "**")):
        text = text.replace(sign, plain)
    text = _SIGNS.sub("$", _CODES.sub("$", text))
    text = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), text)
    text = _NEGATIVE.sub(_negative, text).replace("$", "")
    text = _SCALED.sub(lambda m: f"({m['num']}*{SCALES[m['scale'].lower()]})", text)
    text = _SCALED_GROUP.sub(lambda m: f")*{SCALES[m['scale'].lower()]}", text)
    text = _PERCENTED.sub(r"(\g<num>/100)", text)
    if "%" in text:
        raise ToolError(
            "'%' is a percent sign and goes right after a number (15% * 200 is 30); "
            "there is no remainder operator"
        )
    return text.strip()


def _shown(expression: str, limit: int = 60) -> str:
    return repr(expression if len(expression) <= limit else expression[:limit] + "...")


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression; ToolError for anything not allowed."""
    if len(expression) > MAX_CHARS:
        raise ToolError(f"expression longer than {MAX_CHARS} characters")
    grouped = _GROUPED_ONLY.search(expression)
    if grouped:  # sum(100,200,300) reads as one number: say so rather than add nothing
        raise ToolError(
            f"{grouped[1]}: {grouped[0]!r} reads as one number (a comma before three digits "
            "groups thousands); put a space after each comma between values"
        )
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" (1bnx) is an error here
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(_prepare(expression), mode="eval")
    except SyntaxError as err:
        raise ToolError(f"not an arithmetic expression ({err.msg}): {_shown(expression)}") from None
    except (ValueError, RecursionError, MemoryError):  # null bytes; absurd nesting
        raise ToolError(f"not an arithmetic expression: {_shown(expression)}") from None
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


def _call(node: ast.Call) -> Any:
    if isinstance(node.func, ast.Constant):  # 2(3): no implicit multiplication
        raise ToolError(f"write * between a number and a parenthesis: {node.func.value!r} * (...)")
    if not isinstance(node.func, ast.Name):  # (1).__class__(), a method
        raise ToolError(f"{type(node.func).__name__} is not allowed in an arithmetic expression")
    name = node.func.id
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise ToolError(f"unknown function {name!r}; known: {', '.join(FUNCTIONS)}")
    if node.keywords:
        raise ToolError(f"{name}: give numbers only, as in {USAGE[name]}")
    args = [_eval(a) for a in node.args]
    try:
        return fn(*args)
    except TypeError:  # growth(5): a call with the wrong number of arguments
        count = f"{len(args)} number{'' if len(args) == 1 else 's'}"
        raise ToolError(f"{name}: expects {USAGE[name]}, got {count}") from None


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
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Name):
        raise ToolError(f"{node.id!r} is not a number or a known function; write the numbers")
    if isinstance(node, ast.Tuple):
        raise ToolError(
            "a comma outside a function's arguments: write decimals with a point (3.2) and "
            "thousands as 1,784 or 1784"
        )
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def format_number(value: float) -> str:
    return f"{value:.10g}"


# The expressions the description shows (no task's numbers): one sent verbatim is a copy.
EXAMPLES = ("1250 - 980", "(1250 - 980) / 980 * 100")


class Calculator:
    name = "calculator"
    description = (
        f"Arithmetic, e.g. {EXAMPLES[0]} or {EXAMPLES[1]}. Reads numbers as tables write "
        "them: 2,450, $2,450, $(9.8) million (-9800000), 22.9% (0.229); put a space after a "
        "comma between arguments: sum(100, 200). Functions: "
        "growth(old, new) (percent change), cagr(start, end, years), ratio(a, b), "
        "average(x, ...), sum(x, ...), round(x, n), abs, min, max, sqrt, log."
    )
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": f"e.g. {EXAMPLES[0]}"}},
        "required": ["expression"],
        "additionalProperties": False,
    }

    async def run(self, args: Mapping[str, Any]) -> str:
        return format_number(evaluate(require_str(args, "expression", self.name)))
