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

Both score each pair alone, so a round's top-scored pairs can be near-copies that teach the same
thing. A third measure scores a *batch*:

- **batch information** (``batch-information``): the information a batch of labels gives about the
  reward, with the members' logits z_m = log(p_m / (1 − p_m)) read as draws from a Gaussian posterior
  of the logits (exactly so for the Laplace posterior of ``ensemble.py``: z = w·d is linear in w) and
  each label linearised around the mean logit μ_i, so that it adds Fisher information s_i =
  σ(μ_i) σ(−μ_i) along its pair. A label on pair k then gains

      g_k = ½ log(1 + s_k C_kk)                                   (nats)

  with C the logits' posterior covariance across pairs (estimated from the members), and conditions it
  as a Gaussian observation does, C ← C − s_k C_{·k} C_{k·} / (1 + s_k C_kk), so that pairs like k
  (high covariance with it) lose their gain. The joint information of a batch is the sum of these
  conditional gains, ½ log det(I + S C_B), a submodular function (it is BatchBALD's joint mutual
  information, Kirsch et al. 2019, "BatchBALD: Efficient and Diverse Batch Acquisition for Deep
  Bayesian Active Learning", under this Gaussian approximation; the Gaussian update is the
  information-based design of MacKay 1992, "Information-Based Objective Functions for Active Data
  Selection"; neither is in the shared abstracts, the formulas are derived here), so the greedy
  choice is within 1 − 1/e of the best batch. The score of a pair is its gain when greedily picked
  (the first ``GREEDY_PICKS``), and the rest their gain conditioned on those: the greedy gains only
  fall, so the highest scores are the greedy batch in its order, and a selector that asks the
  best-scored open item next asks them in that order.

BALD and the batch rule measure information about the reward's *parameters*; for a linear reward the
logit variance grows as ‖φ(a) − φ(b)‖², so they favour pairs whose replies differ most, outliers of the
pool, whose labels say little about the pairs a model will be asked to judge. The fourth measure asks
about those instead:

- **expected predictive information** (``epig``; Bickford Smith et al. 2023, "Prediction-Oriented
  Bayesian Active Learning", EPIG: the mutual information between the label of a candidate and the
  label of a target input drawn from the distribution the model will be used on; not in the shared
  abstracts, the Gaussian form here is derived for this module). The targets are the candidates
  themselves (the open pool, at most ``TARGET_PAIRS`` of them, evenly spaced), and each label is
  linearised as above, a Gaussian observation of its logit with noise variance 1 / s, so that for a
  candidate k and target j, with ρ²_kj = C_kj² / ((C_kk + 1/s_k)(C_jj + 1/s_j)),

      EPIG_k = (1/T) Σ_j −½ log(1 − ρ²_kj)                      (nats)

  An outlier, whose logit covaries with few targets, scores low however uncertain it is.

Every measure above grows with the pair's scale: for a linear reward the logit's spread is σ_i =
√(d_iᵀ Σ d_i), proportional to ‖d_i‖, so a pair whose replies differ twice as much scores as if it were
twice as uncertain, though the *direction* of its preference (which is all its label says) is no less
known. On a pool mixing sources (HH-RLHF's near-alike replies beside UltraFeedback's unlike ones) these
rules chase the unlike pairs and the labelled set stops looking like the pool
(``benchmarks/RESULTS.md``, issue 30). A fifth measure does not reward being an outlier:

- **probability of a flip** (``flip``): the posterior probability that the preferred reply is the
  other one than the members' mean says, with the members' logits z_m read as Gaussian draws
  N(μ, σ²) (μ, σ their mean and standard deviation),

      F = Φ(−|μ| / σ)                                               (in [0, ½])

  Scaling a pair's difference d by c > 0 scales μ and σ by c and leaves F as it is: F depends on the
  direction of d only, so an outlier scores no higher for being far. F is ½ where the members' mean
  is indifferent and falls as the posterior grows sure of the sign, which is what a label reveals
  (the misclassification probability of level-set estimation, Bect et al. 2012, "Sequential design
  of computer experiments for the estimation of a probability of failure", with level 0; not in the
  shared abstracts). A pair with no spread (σ = 0) scores 0: the members agree exactly. On issue
  30's benchmark its picks look like the pool (source and ‖d‖) where BALD's do not, but it is no
  better than random order on HH+UF and saves 25 % of the labels on HH (``benchmarks/RESULTS.md``).

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
from scipy import special

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


GREEDY_PICKS = 64
"""Pairs ``batch_information`` picks greedily; the others are scored conditioned on them."""


def logit_posterior(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The members' mean logit per pair and a factor A of the logits' covariance C = AᵀA across
    pairs, (N,) and (M, N), from p clipped to [ε, 1 − ε]."""
    q = np.clip(_members_by_pairs(probs), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    logits = np.log(q) - np.log1p(-q)
    mean = logits.mean(axis=0)
    return mean, (logits - mean) / math.sqrt(max(len(logits) - 1, 1))


def batch_information(probs: np.ndarray | Sequence[Sequence[float]], picks: int = GREEDY_PICKS) -> np.ndarray:
    """Batch information of the module docstring, (M, N) → (N,), in nats: greedy gains of the first
    ``picks`` pairs, the others' gains conditioned on them."""
    mean, factor = logit_posterior(np.asarray(probs, dtype=np.float64))
    tail = np.exp(-np.abs(mean))
    fisher = tail / (1 + tail) ** 2  # s = σ(μ) σ(−μ)
    variance = (factor**2).sum(axis=0)
    scores = np.empty(len(mean))
    open_pairs = np.ones(len(mean), dtype=bool)
    for _ in range(min(picks, len(mean))):
        gains = np.where(open_pairs, 0.5 * np.log1p(fisher * variance), -np.inf)
        k = int(np.argmax(gains))
        scores[k], open_pairs[k] = gains[k], False
        column = factor[:, k].copy()
        if variance[k] <= 0:
            continue
        shrink = fisher[k] / (1 + fisher[k] * variance[k])  # C ← C − shrink · C_{·k} C_{k·}
        # A ← A − γ a_k (a_kᵀ A) gives AᵀA − (2γ − γ² C_kk) C_{·k} C_{k·}; γ solves 2γ − γ² C_kk = shrink
        gamma = (1 - math.sqrt(max(1 - shrink * variance[k], 0.0))) / variance[k]
        factor -= gamma * np.outer(column, column @ factor)
        variance = (factor**2).sum(axis=0)
    scores[open_pairs] = 0.5 * np.log1p(fisher[open_pairs] * variance[open_pairs])
    return scores


TARGET_PAIRS = 2000
"""Targets ``predictive_information`` averages over (the cost is candidates × targets × members)."""


def predictive_information(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """EPIG of the module docstring, (M, N) → (N,), in nats, ≥ 0, with the N pairs (or ``TARGET_PAIRS``
    of them, evenly spaced) as the targets."""
    mean, factor = logit_posterior(np.asarray(probs, dtype=np.float64))
    tail = np.exp(-np.abs(mean))
    noisy = (factor**2).sum(axis=0) + (1 + tail) ** 2 / tail  # C_kk + 1/s_k, with 1/s = (1 + e^−|μ|)² / e^−|μ|
    targets = np.unique(np.linspace(0, len(mean) - 1, min(TARGET_PAIRS, len(mean))).round().astype(int))
    covariance = factor.T @ factor[:, targets]  # C_kj, (N, T)
    squared = np.clip(covariance**2 / (noisy[:, None] * noisy[None, targets]), 0.0, 1 - PROBABILITY_CLIP)
    return -0.5 * np.log1p(-squared).mean(axis=1)


def flip_probability(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """F of the module docstring, Φ(−|μ|/σ) of the members' logits, (M, N) → (N,), in [0, ½]."""
    mean, factor = logit_posterior(np.asarray(probs, dtype=np.float64))
    spread = np.sqrt((factor**2).sum(axis=0))
    ratio = np.divide(np.abs(mean), spread, out=np.full(len(mean), np.inf), where=spread > 0)
    return 0.5 * special.erfc(ratio / math.sqrt(2))


STRATEGIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "disagreement": disagreement,
    "bald": expected_information,
    "batch-information": batch_information,
    "epig": predictive_information,
    "flip": flip_probability,
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
