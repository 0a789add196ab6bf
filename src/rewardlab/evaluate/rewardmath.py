"""RewardMATH-style robustness: one correct solution against many incorrect ones (Kim et al. 2024,
"Evaluating Robustness of Reward Models for Mathematical Reasoning").

A pairwise benchmark asks whether the correct reply beats one incorrect reply; a reward model used for
best-of-N must put it above every incorrect one. RewardMATH scores each problem's correct solution
against its nine incorrect ones:

    accuracy = (1/P) Σ_p 1[r(correct_p) > r(incorrect_p,j) for every j]     (ties: c/k, as RewardBench 2)
    MRR      = (1/P) Σ_p 1 / rank_p,  rank_p = 1 + #{j: r(incorrect_p,j) > r(correct_p)} + ½·#{ties}

and the pairwise accuracy over all (correct, incorrect) pairs is reported beside them: the gap between
it and the one-to-many accuracy is the robustness the pairwise number hides. Rows are RewardBench 2's
(``prompt``, one ``chosen``, a list of ``rejected``, optional ``subset``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rewardlab.evaluate.metrics import AccuracyEstimate, estimate
from rewardlab.evaluate.rewardbench import BestOfNRecord, best_of_n_score


def reciprocal_rank(correct: float, incorrect: Sequence[float]) -> float:
    """1 / (1 + above + ties/2). Examples: 3 vs (1, 2) → 1; 3 vs (4, 1) → 1/2; 3 vs (3, 1) → 1/1.5."""
    above = sum(s > correct for s in incorrect)
    tied = sum(s == correct for s in incorrect)
    return 1.0 / (1.0 + above + tied / 2)


@dataclass
class RewardMathEval:
    """One-to-many accuracy, MRR and pairwise accuracy, overall and per subset."""

    accuracy: AccuracyEstimate
    mrr: float
    pairwise: AccuracyEstimate
    per_subset: dict[str, dict[str, Any]]
    problems: int
    incorrect_per_problem: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rewardmath_eval(
    records: Sequence[BestOfNRecord], scores: Sequence[tuple[Sequence[float], Sequence[float]]]
) -> RewardMathEval:
    """The scores of each record's one correct (``chosen``) and its incorrect (``rejected``) solutions."""
    if not records:
        raise ValueError("no problems to evaluate")
    many: dict[str, list[float]] = defaultdict(list)
    ranks: dict[str, list[float]] = defaultdict(list)
    pairs: dict[str, list[float]] = defaultdict(list)
    for record, (chosen, rejected) in zip(records, scores, strict=True):
        if len(chosen) != 1:
            raise ValueError(
                f"{record.source or 'a row'}: RewardMATH rows have one correct solution (got {len(chosen)})"
            )
        for key in {"all", record.subset or "all"}:
            many[key].append(best_of_n_score(chosen, rejected))
            ranks[key].append(reciprocal_rank(chosen[0], rejected))
            pairs[key] += [1.0 if chosen[0] > r else 0.5 if chosen[0] == r else 0.0 for r in rejected]
    per_subset = {
        name: {"accuracy": asdict(estimate(many[name])), "mrr": sum(ranks[name]) / len(ranks[name])}
        for name in sorted(many)
        if name != "all"
    }
    return RewardMathEval(
        accuracy=estimate(many["all"]),
        mrr=sum(ranks["all"]) / len(ranks["all"]),
        pairwise=estimate(pairs["all"]),
        per_subset=per_subset,
        problems=len(records),
        incorrect_per_problem=sum(len(r.rejected) for r in records) / len(records),
    )


def render_rewardmath(result: RewardMathEval, model: str, data: str) -> list[str]:
    a, p = result.accuracy, result.pairwise
    lines = [
        "# RewardMATH evaluation (one correct against many incorrect)",
        "",
        f"- model: `{model}`",
        f"- data: `{data}` ({result.problems} problems, {result.incorrect_per_problem:g} incorrect each on average)",
        f"- one-to-many accuracy: **{a.accuracy:.4f}** (95 % CI {a.ci_low:.4f} – {a.ci_high:.4f})",
        f"- MRR of the correct solution: {result.mrr:.4f}",
        f"- pairwise accuracy, every (correct, incorrect) pair: {p.accuracy:.4f} (95 % CI {p.ci_low:.4f} – "
        f"{p.ci_high:.4f}, {p.n} pairs)",
    ]
    if result.per_subset:
        lines += ["", "| subset | one-to-many accuracy | 95 % CI | problems | MRR |", "|---|---|---|---|---|"]
        for name, row in result.per_subset.items():
            e = row["accuracy"]
            interval = f"{e['ci_low']:.4f} – {e['ci_high']:.4f}"
            lines.append(f"| {name} | {e['accuracy']:.4f} | {interval} | {e['n']} | {row['mrr']:.4f} |")
    return lines
