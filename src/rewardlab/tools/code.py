"""The code tool: each Python block of a reply run in the sandbox, and what it printed or raised."""

from __future__ import annotations

import re

from rewardlab.data.records import Prompt
from rewardlab.tools.sandbox import run_python

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def code_report(prompt: Prompt, reply: str, timeout_s: float = 5.0) -> str | None:
    """One line per fenced code block of ``reply``; None when it has none."""
    lines = []
    for number, block in enumerate(FENCE.findall(reply), start=1):
        result = run_python(block, timeout_s=timeout_s)
        if result.timed_out:
            outcome = f"ran past the {timeout_s:g} s limit"
        elif result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            outcome = f"failed: {last}"
        else:
            printed = result.stdout.strip()
            outcome = f"printed {printed[:300]!r}" if printed else "ran and printed nothing"
        lines.append(f"code block {number} {outcome}")
    return "\n".join(lines) or None
