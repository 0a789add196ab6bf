"""Which item to ask about next: how informative an item is, and selectors that pick by it.

An ensemble of M reward models gives, for each pair of replies (a, b), M probabilities
p_m = P_m(a ≻ b). Two measures of how much a human label on the pair would teach it:

- **disagreement** (Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization", use
  the members' spread as the reward model's uncertainty; only the abstract was checked here):

      D = (1/M) Σ_m (p_m − p̄)²        p̄ = (1/M) Σ_m p_m

- **expected information gain** (BALD: Houlsby et al. 2011, "Bayesian Active Learning for
  Classification and Preference Learning", eq. 3), the mutual information between the label y and
  the model, with the ensemble as the posterior sample, in nats:

      I = H(p̄) − (1/M) Σ_m H(p_m)        H(p) = −p log p − (1 − p) log(1 − p)

  I is 0 when every member says the same p (however unsure that p is: a coin-flip pair the
  members agree is a coin flip teaches nothing), and log 2 at most, when half the members are sure
  of a and half sure of b. D instead is largest for that 0/1 split too, 1/4.

An item with k replies is asked as one task (a ranking or ratings of all k), so its score is the sum
over its k(k−1)/2 reply pairs. Asking people about the pairs the current models are least sure of
is the active preference elicitation of Zhang et al. 2024 ("Self-Exploring Language Models: Active
Preference Elicitation for Online Alignment"; only the abstract was checked here), applied to the
choice of questions rather than to the generation of replies.

A share of the picks (``random_share``) is made uniformly at random and marked ``"random"``: those
labels are a uniform sample of the items, so a model's accuracy on them (``background.py``, which
never trains on them) estimates its accuracy on the whole pool without the bias of actively chosen,
hard items.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

PROBABILITY_CLIP = 1e-12
"""p is clipped to [ε, 1 − ε] inside the logarithms, so a member that is certain gives H = 0, not NaN."""


def _members_by_pairs(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"expected probabilities of shape (members, pairs), got shape {array.shape}")
    if not np.all((array >= 0) & (array <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return array


def disagreement(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """D of the module docstring: the variance across the M members of P(a ≻ b), (M, N) → (N,)."""
    return _members_by_pairs(probs).var(axis=0)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) = −p log p − (1 − p) log(1 − p), in nats."""
    q = np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return -(q * np.log(q) + (1 - q) * np.log1p(-q))


def expected_information(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """I of the module docstring (BALD): H(mean p) − mean H(p_m), (M, N) → (N,), in nats, ≥ 0."""
    array = _members_by_pairs(probs)
    gain = binary_entropy(array.mean(axis=0)) - binary_entropy(array).mean(axis=0)
    return np.maximum(gain, 0.0)  # H is concave, so gain ≥ 0; the clip removes rounding below it


STRATEGIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "disagreement": disagreement,
    "bald": expected_information,
}
"""How a pair's informativeness is measured, by the name ``ActiveSelector`` and the project take."""


def strategy_function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The measure called ``name``; a ValueError lists the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown selection strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None


def item_scores(
    probs: np.ndarray | Sequence[Sequence[float]], pair_items: Sequence[int], strategy: str = "disagreement"
) -> dict[int, float]:
    """Each item's informativeness: the sum of ``strategy`` over its reply pairs (column j of ``probs``
    is a pair of item ``pair_items[j]``)."""
    values = strategy_function(strategy)(probs)
    if len(values) != len(pair_items):
        raise ValueError(f"got {len(values)} pairs of probabilities for {len(pair_items)} item ids")
    scores: dict[int, float] = {}
    for item, value in zip(pair_items, values.tolist(), strict=True):
        scores[item] = scores.get(item, 0.0) + value
    return scores


class Selector(Protocol):
    def pick(self, candidates: Sequence[int], rng: random.Random) -> tuple[int, str]:
        """One of ``candidates`` (item ids) and how it was chosen: ``"active"`` or ``"random"``."""
        ...


def _check_candidates(candidates: Sequence[int]) -> None:
    if not candidates:
        raise ValueError("no candidate items to pick from")


class RandomSelector:
    """Random order: every pick uniform over the candidates, every pick marked ``"random"``."""

    def pick(self, candidates: Sequence[int], rng: random.Random) -> tuple[int, str]:
        _check_candidates(candidates)
        return rng.choice(list(candidates)), "random"

    def update(self, scores: Mapping[int, float]) -> None:
        """Scores change nothing in random order (so a trainer can call every selector alike)."""


class ActiveSelector:
    """Picks the candidate with the highest informativeness score, except for a ``random_share`` of picks
    made uniformly at random (marked ``"random"``: the unbiased held-out labels).

    Decisions, and why:
    - Before the first scores arrive (no model yet) every pick is uniform; the picks outside the
      random share are still marked ``"active"``, so that they are trained on (were they all marked
      ``"random"``, the held-out set would swallow every early label and no model would ever be
      trained).
    - A candidate without a score (an item added after the last retraining, e.g. a reply a policy
      just generated) counts as the most informative: no model has seen it, so nothing is known of
      it, and the next retraining scores it.
    - Equal best scores are broken at random (``rng``), so annotators working at once spread over them.

    ``update`` swaps the whole score table under a lock; ``pick`` reads one table, never a half-written
    one, and never waits on a retraining.
    """

    def __init__(self, random_share: float = 0.2, strategy: str = "disagreement") -> None:
        if not (math.isfinite(random_share) and 0 <= random_share <= 1):
            raise ValueError(f"random_share must be between 0 and 1, got {random_share}")
        strategy_function(strategy)
        self.random_share = random_share
        self.strategy = strategy
        self._lock = threading.Lock()
        self._scores: dict[int, float] = {}

    def update(self, scores: Mapping[int, float]) -> None:
        table = {int(k): float(v) for k, v in scores.items()}
        with self._lock:
            self._scores = table

    @property
    def scores(self) -> dict[int, float]:
        """A copy of the current score table (empty before the first model)."""
        with self._lock:
            return dict(self._scores)

    def pick(self, candidates: Sequence[int], rng: random.Random) -> tuple[int, str]:
        _check_candidates(candidates)
        pool = list(candidates)
        if rng.random() < self.random_share:
            return rng.choice(pool), "random"
        with self._lock:
            scores = self._scores
        if not scores:
            return rng.choice(pool), "active"
        values = [scores.get(item, math.inf) for item in pool]
        best = max(values)
        return rng.choice([item for item, value in zip(pool, values, strict=True) if value == best]), "active"


def selector_for(
    selection: str, random_share: float = 0.2, strategy: str = "disagreement"
) -> RandomSelector | ActiveSelector:
    """The selector a project's ``selection`` names: ``active`` or ``random`` order."""
    if selection == "random":
        return RandomSelector()
    if selection == "active":
        return ActiveSelector(random_share, strategy)
    raise ValueError(f"selection: {selection!r} is not active or random")
