"""How well rewards reproduce human rankings of k replies (k-wise judgements): pure functions.

Each ranking lists its replies best first; a reward model orders them by score. Two summaries per
ranking, each averaged over rankings (so a ranking of 9 replies counts as much as one of 3):

- *ranking accuracy*: 1 when every one of the k(k−1)/2 pairs is in the human order with a strict
  gap in score, else 0 (the k-wise counterpart of pairwise accuracy; an exact tie is not right);
- *Kendall's τ-b* between the human order and the scores (Kendall 1945): it credits a ranking
  that is nearly right, which ranking accuracy does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from rewardlab.evaluate.metrics import AccuracyEstimate, bootstrap_ci, estimate


def _pair_signs(scores: Sequence[float]) -> list[int]:
    """For every pair i < j (i ranked better by the human): +1 if s_i > s_j, −1 if lower, 0 if equal."""
    k = len(scores)
    return [int(np.sign(scores[i] - scores[j])) for i in range(k) for j in range(i + 1, k)]


def ranking_correct(scores: Sequence[float]) -> float:
    """1.0 if ``scores`` (given in the human order, best first) strictly decrease, else 0.0.

    Example: [3, 2, 1] → 1; [3, 1, 2] → 0; [3, 3, 1] → 0 (a tie leaves the order undecided).
    """
    _check(scores)
    return float(all(sign > 0 for sign in _pair_signs(scores)))


def pair_accuracy(scores: Sequence[float]) -> float:
    """Fraction of the ranking's pairs in the human order, an exact tie in score counting 1/2.

    Example: [3, 1, 2]: pairs (1st, 2nd) right, (1st, 3rd) right, (2nd, 3rd) wrong → 2/3.
    """
    _check(scores)
    signs = _pair_signs(scores)
    return sum(1.0 if s > 0 else 0.5 if s == 0 else 0.0 for s in signs) / len(signs)


def kendall_tau(scores: Sequence[float]) -> float:
    """Kendall's τ-b between the human order (best first, no ties) and ``scores``.

    With n₀ = k(k−1)/2 pairs, C pairs in the human order, D reversed and t pairs tied in score:
    τ-b = (C − D) / √(n₀ · (n₀ − t)). The human order has no ties, so only the score side is
    corrected. When every score is equal the ratio is 0/0; τ is then defined as 0 (no order given).
    Example: [3, 1, 2]: C = 2, D = 1, t = 0 → (2 − 1)/3 = 1/3; [2, 2, 1]: C = 2, D = 0, t = 1 →
    2/√(3·2) = 0.8165.
    Computed by ``scipy.stats.kendalltau`` (variant b) against the human ranks k, k − 1, …, 1.
    """
    _check(scores)
    if len(set(scores)) == 1:
        return 0.0
    return float(kendalltau(np.arange(len(scores), 0, -1), np.asarray(scores, dtype=float)).statistic)


def _check(scores: Sequence[float]) -> None:
    if len(scores) < 2:
        raise ValueError(f"a ranking needs at least two replies (got {len(scores)})")


@dataclass
class RankingEval:
    """Ranking accuracy and pairwise accuracy within rankings (95 % bootstrap intervals over
    rankings), and the mean Kendall τ-b with its interval; ``sizes`` counts rankings by k."""

    ranking_accuracy: AccuracyEstimate
    pair_accuracy: AccuracyEstimate
    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    rankings: int
    sizes: dict[int, int]


def evaluate_rankings(scores: Sequence[Sequence[float]]) -> RankingEval:
    """Summarise the scores of each ranking's replies, each list given in the human order."""
    if not scores:
        raise ValueError("no rankings to evaluate")
    taus = np.array([kendall_tau(s) for s in scores])
    sizes: dict[int, int] = {}
    for s in scores:
        sizes[len(s)] = sizes.get(len(s), 0) + 1
    return RankingEval(
        ranking_accuracy=estimate([ranking_correct(s) for s in scores]),
        pair_accuracy=estimate([pair_accuracy(s) for s in scores]),
        kendall_tau=float(taus.mean()),
        kendall_tau_ci=bootstrap_ci(taus),
        rankings=len(scores),
        sizes=dict(sorted(sizes.items())),
    )
