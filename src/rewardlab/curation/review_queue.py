"""Which pairs people should relabel first: the human-AI loop of Skywork-Reward-V2 (from the abstract).

Skywork-Reward-V2 curates at scale by letting people verify a small gold set and machines curate the
rest under their guidance, then sending back to people the pairs the machines cannot settle. Here the
machine is an ensemble of reward models, and a pair's priority is the ensemble's probability that
its label is wrong,

    doubt = 1 − p = (1/M)·Σ_m σ(−d_m)

highest for pairs every member reverses (likely flips), ½ for pairs the members split on or find
ambiguous, near 0 for pairs they all back. Given a gold set (pairs with verified labels), the
ensemble's error rate on the gold pairs of each subset, e_s = (errors + 1)/(pairs + 2) (Laplace's
rule, so a subset with few gold pairs is not trusted blindly), says where its doubts cannot be taken
as they are: the priority is then ½·doubt + ½·e_s, so the subsets the ensemble gets wrong on gold
also go to people. Ties in priority go to the pair with the wider spread σ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GoldErrors:
    """The ensemble's error rate on gold pairs per subset (None: the pairs without one), smoothed."""

    rates: dict[str | None, float]
    overall: float
    pairs: int

    def rate(self, subset: str | None) -> float:
        return self.rates.get(subset, self.overall)


def gold_errors(probability: Sequence[float] | np.ndarray, subsets: Sequence[str | None]) -> GoldErrors:
    """Error analysis on the gold set: ``probability`` is the ensemble's p for each gold label."""
    wrong = np.asarray(probability, dtype=np.float64) < 0.5
    totals, errors = Counter(subsets), Counter(s for s, w in zip(subsets, wrong, strict=True) if w)
    rates = {s: (errors[s] + 1) / (n + 2) for s, n in totals.items()}
    return GoldErrors(rates, (int(wrong.sum()) + 1) / (len(wrong) + 2), len(wrong))


def reason(probability: float, agreement: float) -> str:
    if probability < 0.5:
        return "the ensemble prefers the rejected reply"
    if agreement < 1:
        return "the ensemble's members disagree"
    return "the ensemble backs the label"


def review_priority(
    probability: Sequence[float] | np.ndarray,
    subsets: Sequence[str | None] | None = None,
    gold: GoldErrors | None = None,
) -> np.ndarray:
    """Each pair's priority for people (see the module docstring)."""
    doubt = 1 - np.asarray(probability, dtype=np.float64)
    if gold is None:
        return doubt
    if subsets is None:
        raise ValueError("a gold set's error analysis needs each pair's subset (None where it has none)")
    return 0.5 * doubt + 0.5 * np.array([gold.rate(s) for s in subsets])


def review_order(priority: np.ndarray, spread: np.ndarray, budget: int) -> list[int]:
    """The ``budget`` pair indices with the highest priority, wider spread first among equals."""
    if budget < 1:
        raise ValueError(f"--budget must be at least 1 (got {budget})")
    order = np.lexsort((-np.asarray(spread, dtype=np.float64), -np.asarray(priority, dtype=np.float64)))
    return order[:budget].tolist()
