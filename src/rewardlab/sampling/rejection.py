"""Statistical rejection sampling (RSO): turn samples of π_sft into samples of the reward-tilted policy.

Liu et al. 2023, "Statistical Rejection Sampling Improves Preference Optimization", §3.1 and
Algorithm 1: the optimal policy of KL-regularised reward maximisation is

    π_r(y|x) = π_sft(y|x) · exp(r(x, y)/β) / Z(x),

and since π_r/π_sft ≤ exp((r_max − log Z)/β), a candidate y ~ π_sft accepted with probability

    exp((r(x, y) − r_max)/β)

is distributed exactly as π_r when r_max bounds r. β → ∞ accepts everything (π_sft), β → 0
only the best candidates (the argmax). In practice r_max is the largest reward among the
candidates drawn for the prompt, as in the paper's Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rso_accept_probability(rewards: Sequence[float], beta: float, r_max: float | None = None) -> np.ndarray:
    """exp((r − r_max)/β) per candidate (1 for the best one); ``r_max`` defaults to max(rewards)."""
    r = np.asarray(rewards, dtype=np.float64)
    if not beta > 0:
        raise ValueError(f"beta must be positive (got {beta})")
    if r.ndim != 1 or r.size == 0:
        raise ValueError("rewards must be a non-empty list of numbers")
    top = float(r.max()) if r_max is None else float(r_max)
    if top < r.max():
        raise ValueError(f"r_max {top} is below the largest reward {r.max()}: acceptance probabilities would exceed 1")
    return np.exp((r - top) / beta)


def rso_accept(
    rewards: Sequence[float], beta: float, rng: np.random.Generator, r_max: float | None = None
) -> np.ndarray:
    """A boolean mask: which candidates (drawn from π_sft) are accepted as samples of π_r."""
    probability = rso_accept_probability(rewards, beta, r_max)
    return rng.random(probability.size) < probability


def rso_sample(rewards: Sequence[float], beta: float, num_samples: int, rng: np.random.Generator) -> list[int]:
    """Liu et al. 2023, Algorithm 1: indices of up to ``num_samples`` candidates, accepted without replacement.

    Each round visits the candidates not yet taken, in random order, and accepts each with
    probability exp((r − r_max)/β), r_max the largest reward among them (so every round accepts
    at least one); rounds repeat until ``num_samples`` are accepted or none is left.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive (got {num_samples})")
    r = np.asarray(rewards, dtype=np.float64)
    rso_accept_probability(r, beta)  # validates
    left = list(range(r.size))
    accepted: list[int] = []
    while left and len(accepted) < num_samples:
        probability = rso_accept_probability(r[left], beta)
        taken = set()
        for j in rng.permutation(len(left)).tolist():
            if rng.random() < probability[j]:
                taken.add(left[j])
                accepted.append(left[j])
                if len(accepted) == num_samples:
                    break
        left = [i for i in left if i not in taken]
    return accepted


def tilted_distribution(base: Sequence[float], rewards: Sequence[float], beta: float) -> np.ndarray:
    """π_r ∝ π_sft · exp(r/β) over a finite support (the target RSO samples from)."""
    p, r = np.asarray(base, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError("base probabilities and rewards must be equal-length lists")
    if not beta > 0:
        raise ValueError(f"beta must be positive (got {beta})")
    logits = np.log(p) + (r - r.max()) / beta
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()
