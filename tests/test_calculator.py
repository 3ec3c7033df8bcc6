"""The calculator: attacked as an earlier issue asked, and reading numbers as financial tables
write them (thousands separators, currency, scale words, parentheses negatives, percents)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmscope.tools.base import ToolError
from slmscope.tools.calculator import EXAMPLES, FUNCTIONS, Calculator, evaluate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("growth(120, 150)", 25.0),
        ("cagr(100, 200, 5)", 14.8698355),
        ("ratio(3, 4)", 0.75),
        ("average(1, 2, 3, 4)", 2.5),
        ("sum(1, 2, 3.5)", 6.5),
        ("15% * 200", 30.0),
        ("$1,234 + 1", 1235.0),
        ("(2 + 3) * 4 ** 2", 80.0),
        ("-3 // 2", -2.0),
        ("round(2.345, 2)", 2.35),
        ("2 ^ 10", 1024.0),
        ("max(1, 7, 3)", 7.0),
        # Numbers as tables write them (issue 20).
        ("1,784 - 1,495", 289.0),
        ("growth(1,495, 1,784)", (1784 - 1495) / 1495 * 100),
        ("average(1,784,1,495)", 1639.5),  # "1,495" is one number after a comma, too
        ("12,345,678.5 + 0.5", 12345679.0),
        ("$(9.8) million", -9_800_000.0),
        ("($9.8) million", -9_800_000.0),
        ("(9.8) million", -9_800_000.0),
        ("(5.2)%", -0.052),
        ("(9.8)", 9.8),  # bare parentheses group
        ("(55 - 40) / 40 * 100", 37.5),
        ("(2 + 3) million", 5_000_000.0),
        ("-$9.8", -9.8),
        ("$-9.8", -9.8),
        ("-$(9.8)", 9.8),  # the minus of a negative
        ("€ 3.2 + £5 + ¥1,000", 1008.2),
        ("USD 100 - 20 eur", 80.0),
        ("$9.8bn / 1 mn", 9800.0),
        ("EUR 1,200.5 Million", 1_200_500_000.0),
        ("22.9%", 0.229),
        ("22.9% * 200", 45.8),
        ("growth(50%, 60%)", 20.0),
        ("max(1, 784)", 784.0),
        ("ratio(1234,567)", 1234 / 567),  # not a thousands grouping: two arguments
        ("max(1,78)", 78.0),
        ("3 \u00d7 4 \u2212 2 \u00f7 2", 11.0),
        ("1784\u00a0- 1", 1783.0),
    ],
)
def test_calculator_values(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "not allowed"),
        ("__import__('os')", "unknown function"),
        ("(1).__class__", "not allowed"),
        ("x + 1", "'x' is not a number or a known function"),
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 1000", "too large"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("1 +", r"not an arithmetic expression \(invalid syntax\): '1 \+'"),
        ("1" + "+1" * 300, "longer than"),
        ("[1, 2]", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("10.0 ** 99 * 10.0 ** 99", "bounds"),
        ("growth(5)", "growth: expects growth\\(old, new\\), got 1 number$"),
        ("growth(1,784, 1,495, 3)", "growth: expects growth\\(old, new\\), got 3 numbers"),
        ("cagr(1, 2)", "cagr: "),
        ("ratio(1, 2, 3)", "ratio: "),
        ("difference(1,784, 1,495)", "unknown function 'difference'; known: growth, cagr"),
        ("round(2.5, 0.5)", "whole number"),
        ("max()", "needs at least one value"),
        ("growth(old=1, new=2)", "numbers only"),
        ("7 % 3", "no remainder operator"),
        ("3,2", "write decimals with a point"),
        ("2(3 + 4)", r"write \* between a number and a parenthesis"),
        ("\x00", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_calculator_never_raises_anything_but_tool_error(text: str) -> None:
    with contextlib.suppress(ToolError):
        evaluate(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789,.$€()%- *+/mlionbthusad", max_size=60))
def test_table_notation_never_raises_anything_but_tool_error(text: str) -> None:
    with contextlib.suppress(ToolError):
        evaluate(text)


@given(st.sampled_from(sorted(FUNCTIONS)), st.integers(0, 5), st.floats(-1e6, 1e6))
def test_any_function_with_any_number_of_arguments_is_a_value_or_a_tool_error(
    name: str, count: int, value: float
) -> None:
    with contextlib.suppress(ToolError):
        evaluate(f"{name}({', '.join([repr(value)] * count)})")


# --- numbers as tables write them: the same value as the plain number -------------------------

MONEY = st.floats(0, 1e12, allow_nan=False, allow_infinity=False)
SIGN = st.sampled_from(["$", "€", "£", "¥", "$ ", "USD ", "EUR "])
SCALE = st.sampled_from([("thousand", 1e3), ("million", 1e6), ("billion", 1e9), ("bn", 1e9)])


def plain(x: float) -> float:
    """The value the two-decimal spelling of x stands for."""
    return float(f"{x:.2f}")


@given(st.integers(-(10**15), 10**15))
def test_thousands_separators_are_the_plain_integer(n: int) -> None:
    assert evaluate(f"{n:,}") == n
    assert evaluate(f"({n:,})") == n  # bare parentheses group


@given(MONEY)
def test_thousands_separators_with_decimals_are_the_plain_number(x: float) -> None:
    assert evaluate(f"{x:,.2f}") == pytest.approx(plain(x))


@given(MONEY, SIGN)
def test_currency_signs_are_dropped(x: float, sign: str) -> None:
    assert evaluate(f"{sign}{x:,.2f}") == pytest.approx(plain(x))
    assert evaluate(f"-{sign}{x:,.2f}") == pytest.approx(-plain(x))


@given(MONEY, SIGN)
def test_a_marked_number_in_parentheses_is_negative(x: float, sign: str) -> None:
    assert evaluate(f"{sign}({x:,.2f})") == pytest.approx(-plain(x))
    assert evaluate(f"({sign}{x:,.2f})") == pytest.approx(-plain(x))
    assert evaluate(f"({x:,.2f})%") == pytest.approx(-plain(x) / 100)


@given(st.floats(0, 1e6, allow_nan=False), SIGN, SCALE)
def test_scale_words_multiply(x: float, sign: str, scale: tuple[str, float]) -> None:
    word, factor = scale
    assert evaluate(f"{sign}{x:,.2f} {word}") == pytest.approx(plain(x) * factor)
    assert evaluate(f"{sign}({x:,.2f}) {word}") == pytest.approx(-plain(x) * factor)
    assert evaluate(f"({x:,.2f}) {word}") == pytest.approx(-plain(x) * factor)


@given(st.floats(-1e9, 1e9, allow_nan=False), st.floats(-1e3, 1e3, allow_nan=False))
def test_a_percent_is_the_number_over_a_hundred(x: float, y: float) -> None:
    assert evaluate(f"{x:,.2f}%") == pytest.approx(plain(x) / 100)
    assert evaluate(f"{x:,.2f}% * {y!r}") == pytest.approx(plain(x) / 100 * y)


@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), SIGN)
def test_a_difference_of_table_numbers_is_the_plain_difference(a: int, b: int, sign: str) -> None:
    assert evaluate(f"{a:,} - {b:,}") == a - b
    assert evaluate(f"{sign}{a:,} - {sign}{b:,}") == a - b
    assert evaluate(f"ratio({a:,}, {b:,})" if b else f"{a:,}") == pytest.approx(a / b if b else a)


# --- plain expressions read as before --------------------------------------------------------

NUMBER = st.one_of(
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False).map(lambda x: repr(round(x, 6))),
)


def _combine(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    op = st.sampled_from([" + ", " - ", " * ", " / ", "-", "*"])
    return st.one_of(
        st.tuples(parts, op, parts).map("".join),
        parts.map(lambda p: f"({p})"),
        parts.map(lambda p: f"-{p}"),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(NUMBER, _combine, max_leaves=8))
def test_plain_expressions_are_python_arithmetic(expression: str) -> None:
    try:
        expected = eval(expression, {"__builtins__": {}})  # the generated text is arithmetic only
    except ZeroDivisionError:
        with pytest.raises(ToolError, match="division by zero"):
            evaluate(expression)
        return
    assert evaluate(expression) == pytest.approx(expected)


# --- what the model reads ---------------------------------------------------------------------


def test_the_description_leads_with_plain_arithmetic_and_its_readings_hold() -> None:
    text = Calculator.description
    assert text.startswith(f"Arithmetic, e.g. {EXAMPLES[0]} or {EXAMPLES[1]}.")
    assert len(text) < 500  # small models read it on every turn
    assert [evaluate(e) for e in EXAMPLES] == [270.0, pytest.approx(27.5510204)]
    for shown, value in [
        ("2,450", 2450),
        ("$2,450", 2450),
        ("$(9.8) million", -9_800_000),
        ("22.9%", 0.229),
    ]:
        assert shown in text and evaluate(shown) == pytest.approx(value)
    assert "-9800000" in text and "0.229" in text


def test_the_tool_returns_the_number_as_text() -> None:
    assert asyncio.run(Calculator().run({"expression": "1,784 - 1,495"})) == "289"
    assert asyncio.run(Calculator().run({"expression": "22.9%"})) == "0.229"


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("sum(100,200,300)", "reads as one number"),  # not 100200300 in silence
        ("max(1,784)", "reads as one number"),
        ("round(5, -10**9)", "within"),  # 10**n would hang the process
        ("round(5, -1e99)", "within"),
    ],
)
def test_ambiguous_groupings_and_huge_roundings_are_refused(expression: str, said: str) -> None:
    with pytest.raises(ToolError, match=said):
        evaluate(expression)
