"""What the language-model reward methods (ICPL, LaRe, ONI) share: a gridworld's transitions told in words,
a language model reached through one callable, and LM-written functions run in the sandbox over them.

A language model is anything with ``generate(prompt) -> str``: a scripted function in tests, or
:class:`LMGenerate`, which wraps a local causal LM (``smollm2`` or a folder) with the project's own
generation code. Code an LM writes is never imported here: it runs in ``tools.sandbox.run_python``
(time and memory limits, no network, no files outside a temporary folder), once per candidate, over
every transition of the MDP, and comes back as numbers or as the reason it was discarded.

A transition (s, a, s') of a gridworld is described by the dict :func:`transition_descriptions` builds
(see :data:`DESCRIPTION_KEYS`); a slippery move has one description per outcome, weighted by its
probability, so a function f of descriptions gives the reward table r(s, a) = Σ_s' P(s'|s, a)·f(s, a, s').
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rewardlab.control.mdp import ACTION_NAMES, CELL_NAMES, TabularMDP, grid_cells
from rewardlab.tools.sandbox import run_python

if TYPE_CHECKING:
    from rewardlab.models.causal_lm import CausalLM

Generate = Callable[[str], str]
"""A language model as the methods need it: a prompt in, its reply out."""

DESCRIPTION_KEYS = ("row", "col", "action", "next_row", "next_col", "entered", "moved")
"""A transition told as a dict: the agent's cell (``row``, ``col``), the ``action`` (up, down, left, right),
the cell it ends in (``next_row``, ``next_col``), what that cell holds (``entered``: empty, coin, mud, goal
or hazard) and whether it ``moved`` (False when it walked into a wall or the edge)."""

OUTPUT_MARK = "@@rewardlab-values@@ "
"""Prefix of the one stdout line the sandbox harness writes its results on."""


@dataclass
class LMGenerate:
    """``generate(prompt)`` backed by a local causal LM: the prompt as one user turn in its chat format
    (``sampling.generation.prompt_prefix``), a reply of at most ``max_new_tokens`` tokens from
    ``CausalLM.generate``. Each call draws with the next seed, so asking the same prompt k times gives
    k different candidates, and the whole sequence of replies is reproducible from ``seed``."""

    lm: CausalLM
    max_new_tokens: int = 160
    temperature: float = 0.7
    seed: int = 0
    calls: int = 0

    @classmethod
    def load(cls, model: str | Path, **settings: float) -> LMGenerate:
        """``model`` is ``smollm2`` or a local causal LM folder (safetensors only, no remote code)."""
        from rewardlab.models.causal_lm import CausalLM

        return cls(CausalLM.from_pretrained(model), **settings)  # type: ignore[arg-type]

    def __call__(self, prompt: str) -> str:
        from rewardlab.sampling.generation import prompt_prefix

        prefix = prompt_prefix(self.lm, ({"role": "user", "content": prompt},))
        seed = self.seed * 1_000_003 + self.calls
        self.calls += 1
        return self.lm.generate(prefix, max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed)


def as_generate(model: str | Path | Generate, **settings: float) -> Generate:
    """A callable is used as it is; a path or ``smollm2`` is loaded as an :class:`LMGenerate`."""
    return model if callable(model) else LMGenerate.load(model, **settings)


@dataclass(frozen=True)
class Outcomes:
    """Every possible transition of an MDP: ``index[k] = (s, a, s')`` with probability ``prob[k]`` and its
    description ``descriptions[k]``. Transitions out of terminal states are left out (their reward is 0)."""

    index: np.ndarray  # (K, 3) int
    prob: np.ndarray  # (K,)
    descriptions: list[dict[str, object]]


def transition_descriptions(mdp: TabularMDP) -> Outcomes:
    """Each non-terminal (s, a, s') with P > 0, described by :data:`DESCRIPTION_KEYS`."""
    cells = grid_cells(mdp)
    index, prob, descriptions = [], [], []
    for s, (i, j) in enumerate(cells):
        if mdp.terminal[s]:
            continue
        for a in range(mdp.n_actions):
            for s2 in np.flatnonzero(mdp.transitions[s, a] > 0):
                i2, j2 = cells[s2]
                index.append((s, a, int(s2)))
                prob.append(float(mdp.transitions[s, a, s2]))
                descriptions.append(
                    {
                        "row": i,
                        "col": j,
                        "action": ACTION_NAMES[a],
                        "next_row": i2,
                        "next_col": j2,
                        "entered": CELL_NAMES[mdp.layout[i2][j2]],
                        "moved": bool(s2 != s),
                    }
                )
    return Outcomes(np.array(index, dtype=int).reshape(-1, 3), np.array(prob), descriptions)


def expected_table(mdp: TabularMDP, outcomes: Outcomes, values: np.ndarray) -> np.ndarray:
    """r(s, a) = Σ_s' P(s'|s, a)·values[(s, a, s')]: per-outcome values (K,) or (K, D) as a table (S, A[, D])."""
    table = np.zeros((mdp.n_states, mdp.n_actions, *values.shape[1:]))
    weighted = values * outcomes.prob.reshape(-1, *([1] * (values.ndim - 1)))
    np.add.at(table, (outcomes.index[:, 0], outcomes.index[:, 1]), weighted)
    return table


def grid_description(mdp: TabularMDP) -> str:
    """The layout with a legend, as the prompts show it."""
    legend = "Legend: . empty, S start, c coin, m mud, G goal, X hazard, # wall. Rows count from 0 at the top."
    return "\n".join(mdp.layout) + "\n" + legend


FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_function(text: str, name: str) -> str | None:
    """The Python source of ``def name(`` in an LM reply: the fenced block holding it (an unclosed fence runs
    to the end), else the reply from ``def name(`` on; None when the reply defines no such function."""
    for block in FENCE.findall(text):
        if f"def {name}(" in block:
            return block.strip("\n")
    start = text.find(f"def {name}(")
    return None if start < 0 else text[start:].split("```")[0].strip("\n")


@dataclass(frozen=True)
class CodeRun:
    """An LM-written function run over descriptions: ``values`` (K,) or (K, D), or why it was discarded."""

    values: np.ndarray | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.values is not None


HARNESS = """
import json as _json, math as _math
_rows = _json.loads({rows!r})
_out = []
for _k, _row in enumerate(_rows):
    _v = {name}(dict(_row))
    _vec = list(_v) if isinstance(_v, (list, tuple)) else [_v]
    for _x in _vec:
        if not isinstance(_x, (int, float)) or not _math.isfinite(_x):
            raise TypeError(f"{name}() returned {{_v!r}} for transition {{_k}}; expected finite numbers")
    _out.append(_vec)
print({mark!r} + _json.dumps(_out))
"""


def run_function(
    code: str, name: str, descriptions: Sequence[dict[str, object]], *, vector: bool = False, timeout_s: float = 5.0
) -> CodeRun:
    """Run ``code`` (which must define ``name``) in the sandbox on each description. ``vector``: the function
    returns a list of numbers, the same length for every transition; otherwise one number (booleans count as
    0/1). Failures, time-outs and non-numbers come back as ``CodeRun(None, reason)``."""
    program = code + "\n" + HARNESS.format(rows=json.dumps(list(descriptions)), name=name, mark=OUTPUT_MARK)
    result = run_python(program, timeout_s=timeout_s, max_output=10_000_000)
    if result.timed_out:
        return CodeRun(None, f"timed out after {timeout_s:g} s")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return CodeRun(None, f"failed: {last[:300]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith(OUTPUT_MARK)]
    if not lines:
        return CodeRun(None, "printed no values")
    rows = json.loads(lines[-1][len(OUTPUT_MARK) :])
    widths = {len(row) for row in rows}
    if len(rows) != len(descriptions) or len(widths) > 1 or (not vector and widths != {1}) or widths == {0}:
        expected = "a list of the same length for every transition" if vector else "one number"
        return CodeRun(None, f"returned values of lengths {sorted(widths)}; expected {expected}")
    values = np.array(rows, dtype=float)
    return CodeRun(values if vector else values[:, 0], None)
