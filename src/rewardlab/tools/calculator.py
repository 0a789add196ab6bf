"""The calculator tool: every calculation a reply writes out (``a op b … = c``) recomputed exactly."""

from __future__ import annotations

from fractions import Fraction

from rewardlab.data.arithmetic import equations, evaluate_expression
from rewardlab.data.records import Prompt


def _shown(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.6g}"


def calculator_report(prompt: Prompt, reply: str) -> str | None:
    """One line per calculation in ``reply``: right, or wrong with the true value; None when there is none."""
    lines = []
    for expression, _, stated in equations(reply):
        try:
            true = evaluate_expression(expression)
        except ZeroDivisionError:
            lines.append(f"{expression} = {_shown(stated)}: wrong, it divides by zero")
            continue
        verdict = "right" if true == stated else f"wrong, it is {_shown(true)}"
        lines.append(f"{expression} = {_shown(stated)}: {verdict}")
    return "\n".join(lines) or None
