"""Score benchmark-format data with any scorer and summarise it: RewardBench v1 pairs, RewardBench 2
best-of-N records, RewardMATH one-to-many records, k-wise rankings and principle flip-sets. The maths is
in ``rewardbench.py``, ``rewardmath.py``, ``ranking.py`` and ``principles.py``."""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.data.records import PreferencePair, Ranking
from rewardlab.evaluate.principles import PrincipleEval, principle_eval
from rewardlab.evaluate.ranking import RankingEval, evaluate_rankings
from rewardlab.evaluate.rewardbench import (
    BestOfNRecord,
    RewardBench2Eval,
    RewardBenchEval,
    SectionMap,
    rewardbench_v1,
    rewardbench_v2,
)
from rewardlab.evaluate.rewardmath import RewardMathEval, rewardmath_eval
from rewardlab.evaluate.scorers import Comparer, Scorer, grouped_scores, pair_scores


def evaluate_rewardbench(
    scorer: Scorer | Comparer,
    pairs: Sequence[PreferencePair],
    section_map: SectionMap | None = None,
    *,
    tie_credit: float = 0.0,
) -> RewardBenchEval:
    """RewardBench v1: per-subset accuracy, section scores and their mean."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    chosen, rejected = pair_scores(scorer, pairs)
    return rewardbench_v1(pairs, chosen, rejected, section_map, tie_credit=tie_credit)


def evaluate_rewardbench2(scorer: Scorer | Comparer, records: Sequence[BestOfNRecord]) -> RewardBench2Eval:
    """RewardBench 2: best-of-N per subset, the Ties score, and their mean."""
    return rewardbench_v2(records, best_of_n_scores(scorer, records))


def evaluate_rewardmath(scorer: Scorer | Comparer, records: Sequence[BestOfNRecord]) -> RewardMathEval:
    """RewardMATH: one correct solution against many incorrect ones (accuracy, MRR, pairwise accuracy)."""
    return rewardmath_eval(records, best_of_n_scores(scorer, records))


def best_of_n_scores(
    scorer: Scorer | Comparer, records: Sequence[BestOfNRecord]
) -> list[tuple[list[float], list[float]]]:
    """(chosen scores, rejected scores) of every record, all replies scored in one pass."""
    if not records:
        raise ValueError("no prompts to evaluate")
    groups = [[*r.chosen, *r.rejected] for r in records]
    scores = grouped_scores(scorer, [r.prompt for r in records], groups)
    return [(s[: len(r.chosen)], s[len(r.chosen) :]) for r, s in zip(records, scores, strict=True)]


def evaluate_kwise(scorer: Scorer | Comparer, rankings: Sequence[Ranking]) -> RankingEval:
    """Ranking accuracy and Kendall's τ-b of the scores against human rankings (best first)."""
    if not rankings:
        raise ValueError("no rankings to evaluate (k-wise rows need responses and a ranking)")
    return evaluate_rankings(
        grouped_scores(scorer, [r.prompt for r in rankings], [list(r.responses) for r in rankings])
    )


def evaluate_principles(scorer: Scorer | Comparer, pairs: Sequence[PreferencePair]) -> PrincipleEval:
    """Accuracy per principle and principle sensitivity on flip-sets (rows whose ``context`` is the
    principle, already stated in their prompts; see ``principles.py``)."""
    if not pairs:
        raise ValueError("no principle rows to evaluate")
    chosen, rejected = pair_scores(scorer, pairs)
    return principle_eval(pairs, chosen, rejected)
