"""Tools by name, as a judge is given them: ``calculator``, ``python``, ``lookup=FOLDER``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from rewardlab.data.records import Prompt
from rewardlab.tools.calculator import calculator_report
from rewardlab.tools.code import code_report
from rewardlab.tools.lookup import DocumentIndex, lookup_report

Tool = Callable[[Prompt, str], "str | None"]
"""What a tool reports about one reply to one prompt (None: nothing to say)."""
NAMES = ("calculator", "python", "lookup")


def parse_tools(spec: str) -> list[tuple[str, Tool]]:
    """``"calculator,python,lookup=docs/"`` as (name, tool) pairs, in the order given."""
    tools: list[tuple[str, Tool]] = []
    for item in (part.strip() for part in spec.split(",")):
        name, _, value = item.partition("=")
        if name == "calculator" and not value:
            tools.append((name, calculator_report))
        elif name == "python" and not value:
            tools.append((name, code_report))
        elif name == "lookup" and value:
            tools.append((name, partial(lookup_report, DocumentIndex(value))))
        else:
            raise ValueError(f"unknown tool {item!r}: give calculator, python or lookup=FOLDER, comma-separated")
    if not tools:
        raise ValueError("no tools given")
    return tools


def tool_evidence(tools: Sequence[tuple[str, Tool]], prompt: Prompt, reply: str) -> str | None:
    """What every tool reports about ``reply``, each under its name; None when none has anything to say."""
    parts = [f"{name}:\n{report}" for name, tool in tools if (report := tool(prompt, reply))]
    return "\n".join(parts) or None
