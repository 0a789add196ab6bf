"""Does a scorer follow the principle it is given? Accuracy per principle and principle sensitivity.

RewardAnything (Yu et al. 2025, "Generalizable Principle-Following Reward Models"; only the
abstract was read) argues that a reward model should judge by a natural-language principle given
with the task, not by one fixed notion of a good reply. The rows here (``data/principles.py``;
``rewardlab eval MODEL principles --format principles``) state the principle as the row's
``context``, which the reader puts before the prompt (``data/context.py``: ``Context: {principle}``),
so every scorer reads it in its prompt. Rows come in **flip-sets** (a shared ``group``): the same
two replies under a principle and under its opposite, ``chosen`` swapped.

- accuracy per principle (``subset``) and overall, ties in score counting ½, with 95 % bootstrap
  intervals (``metrics.estimate``);
- **principle sensitivity**: the fraction of flip-sets whose two rows are both ordered right
  (strictly), i.e. the scorer's preference between the two replies follows the principle both
  ways, with a bootstrap interval over flip-sets.

A scorer that ignores the principle scores the two replies the same in both rows of a flip-set,
so it is right on exactly one of them: accuracy exactly ½ on every flip-set and sensitivity 0
(ties: ½ and ½, still 0). An oracle scores 1 and 1. The known answers are what make the two ends
testable (``tests/test_principles.py``). Reward models truncate from the left, so a model whose
``max_length`` is shorter than principle, prompt and reply together never sees the principle
(the embedded rows fit in 256 MiniLM tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct


@dataclass
class PrincipleEval:
    """Accuracy per principle and overall, and principle sensitivity over ``flip_sets`` flip-sets."""

    overall: AccuracyEstimate
    per_principle: dict[str, AccuracyEstimate]
    sensitivity: AccuracyEstimate
    flip_set_accuracy: AccuracyEstimate
    flip_sets: int
    score_ties: int


def flip_sets(pairs: Sequence[PreferencePair]) -> dict[str, tuple[int, int]]:
    """The indices of each flip-set's two rows, by ``group``; a group that is not two rows with the
    same replies swapped is an error naming it. Rows without a group are in no flip-set."""
    members: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        if pair.group is not None:
            members.setdefault(pair.group, []).append(i)
    out = {}
    for group, rows in members.items():
        first, second = (pairs[i] for i in rows[:2]) if len(rows) == 2 else (None, None)
        if first is None or second is None or (first.chosen, first.rejected) != (second.rejected, second.chosen):
            where = pairs[rows[0]].source or f"row {rows[0]}"
            raise ValueError(
                f'{where}: group "{group}" is not a flip-set (expected two rows with the same two replies, '
                f"chosen and rejected swapped; got {len(rows)} rows)"
            )
        out[group] = (rows[0], rows[1])
    return out


def principle_eval(
    pairs: Sequence[PreferencePair], chosen: Sequence[float], rejected: Sequence[float]
) -> PrincipleEval:
    """Summarise the scores of each row's chosen and rejected reply (see the module docstring)."""
    if not pairs:
        raise ValueError("no principle rows to evaluate")
    correct = pairwise_correct(chosen, rejected)
    subsets: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        subsets.setdefault(pair.subset or "(no principle name)", []).append(i)
    sets = list(flip_sets(pairs).values())
    both = np.array([float(correct[i] == 1.0 and correct[j] == 1.0) for i, j in sets])
    in_sets = np.array([correct[k] for i, j in sets for k in (i, j)])
    return PrincipleEval(
        overall=estimate(correct),
        per_principle={name: estimate(correct[rows]) for name, rows in subsets.items()},
        sensitivity=estimate(both),
        flip_set_accuracy=estimate(in_sets),
        flip_sets=len(sets),
        score_ties=int(np.sum(np.asarray(chosen, dtype=float) == np.asarray(rejected, dtype=float))),
    )


def _row(name: str, e: AccuracyEstimate) -> str:
    return f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |"


def render_principles(result: PrincipleEval, model: str, data: str) -> list[str]:
    s, o = result.sensitivity, result.overall
    return [
        "# Principle-following evaluation",
        "",
        f"- model: `{model}`",
        f"- data: `{data}` ({o.n} rows, {result.flip_sets} flip-sets)",
        f"- accuracy: **{o.accuracy:.4f}** (95 % CI {o.ci_low:.4f} – {o.ci_high:.4f}; "
        "a scorer that ignores the principle: exactly 0.5 on flip-sets)",
        f"- principle sensitivity (flip-sets right both ways): **{s.accuracy:.4f}** "
        f"(95 % CI {s.ci_low:.4f} – {s.ci_high:.4f}; ignoring the principle: 0, an oracle: 1)",
        f"- exact ties in score: {result.score_ties} (each counted ½ right)",
        "",
        "| principle | accuracy | 95 % CI | n |",
        "|---|---|---|---|",
        *[_row(name, e) for name, e in result.per_principle.items()],
    ]
