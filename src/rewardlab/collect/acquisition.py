"""Stochastic acquisition and the importance weights that make a fit on its labels unbiased.

Picking the top-scored pairs (``active.py``) makes the labelled set unlike the pool: a reward fitted
on it minimises its loss on the pairs the rule liked, not on the pairs it will be asked to judge.
Farquhar et al. 2021 ("On Statistical Bias in Active Learning: How and When to Fix It"; not in the
shared abstracts, the estimator is from the paper, the code written here) remove that bias in two
steps:

1. **Draw instead of taking the top**: the m-th label comes from the N − m + 1 pairs still open with
   a known probability q_m > 0 on each, here q ∝ s^β for the rule's scores s (β = ``power``; β = 0
   is uniform, larger β comes closer to the top-scored pick), mixed with the uniform distribution
   with weight ``floor`` so that no open pair has q below floor / (N − m + 1) (a defensive mixture:
   the weights below stay under 1 / floor). A batch of k draws without replacement is the
   Gumbel-top-k of log q + G, G ~ Gumbel(0, 1) (the k largest keys are k successive draws, each ∝ q
   over the pairs left), so the probability of the j-th pick of the batch is its q over the pairs
   not yet taken.
2. **Weight each label** in the loss by (their R_LURE, with M labels drawn from a pool of N)

       v_m = 1 + (N − M) / (N − m) · (1 / ((N − m + 1) q_m) − 1)

   so that (1/M) Σ_m v_m L(pair_m) has expectation (1/N) Σ_i L(pair_i), the loss on the whole pool,
   whatever the q_m (as long as they are > 0 where L is). A uniform draw (q_m = 1 / (N − m + 1)) has
   v_m = 1; with M = N every pair is labelled and every v is 1; with M = 1, v = 1 / (N q), plain
   importance sampling. The weights depend on M, so they are recomputed whenever labels are added.

Unbiased is not better: with q ∝ BALD and no floor the weights' variance cost more accuracy on issue
30's benchmark than the bias they removed; a floor of 0.5 (v ≤ 2) brought the weighted rules level
with random order, not ahead of it (``benchmarks/RESULTS.md``, twenty-first session).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def proposal(scores: np.ndarray, power: float = 1.0, floor: float = 0.0) -> np.ndarray:
    """q ∝ s^β mixed with the uniform distribution (weight ``floor``), over the open pairs; uniform
    where every s^β is 0."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"need one score per open pair, got shape {values.shape}")
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite and non-negative to draw in proportion to them")
    if not (np.isfinite(power) and power >= 0) or not 0 <= floor <= 1:
        raise ValueError(f"need power >= 0 and floor in [0, 1], got {power} and {floor}")
    raised = values**power if power > 0 else np.ones(len(values))
    total = raised.sum()
    uniform = np.full(len(values), 1 / len(values))
    if total <= 0:
        return uniform
    return (1 - floor) * raised / total + floor * uniform


def draw(
    scores: np.ndarray, size: int, rng: np.random.Generator, power: float = 1.0, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` positions drawn without replacement, each ∝ ``proposal`` over the positions left, and
    the probability each had when drawn (the q_m of the module docstring)."""
    q = proposal(scores, power, floor)
    if not 0 <= size <= len(q):
        raise ValueError(f"cannot draw {size} of {len(q)} open pairs")
    with np.errstate(divide="ignore"):
        keys = np.log(q) + rng.gumbel(size=len(q))
    picks = np.argsort(-keys)[:size]
    left = 1.0 - np.concatenate([[0.0], np.cumsum(q[picks])[:-1]])  # mass not yet drawn before each pick
    return picks, q[picks] / np.maximum(left, np.finfo(float).tiny)


def lure_weights(probabilities: Sequence[float] | np.ndarray, pool_size: int) -> np.ndarray:
    """v_m of the module docstring for the M = len(``probabilities``) labels drawn in that order from a
    pool of ``pool_size`` pairs (q_m: the probability the m-th had among the N − m + 1 open)."""
    q = np.asarray(probabilities, dtype=np.float64)
    total = len(q)
    if q.ndim != 1 or total > pool_size:
        raise ValueError(f"need at most {pool_size} draw probabilities in a row, got shape {q.shape}")
    if np.any(q <= 0) or np.any(q > 1):
        raise ValueError("draw probabilities must lie in (0, 1]")
    m = np.arange(1, total + 1)
    open_pairs = pool_size - m + 1
    share = np.divide(pool_size - total, pool_size - m, out=np.zeros(total), where=pool_size > m)
    return 1 + share * (1 / (open_pairs * q) - 1)
