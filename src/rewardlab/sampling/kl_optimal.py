"""The KL-constrained optimum, φ_λ ∝ p·exp(λr), on a finite support, and best-of-N beside it at equal KL.

Yang et al. 2024 ("Asymptotics of Language Model Alignment", Lemma/closed form of §3): the
solution of

    max_φ E_φ[r]  subject to  KL(φ ‖ p) ≤ Δ

is the exponential tilt φ_λ(y) = p(y)·exp(λ r(y)) / Z(λ), with λ ≥ 0 chosen so that
KL(φ_λ ‖ p) = Δ (or λ = ∞, the base restricted to the best outcomes, when Δ is at least the
largest reachable KL, −log p(argmax r)). Every function works in log space (logsumexp), so a
base probability of 1e−300 or a λ of 1e6 stays finite.

With the paper's two simplifying assumptions (a memoryless language model: tokens drawn i.i.d.;
a linear reward: the sum of per-token rewards), both best-of-N and the tilt depend on a reply
only through its total reward, so both are computed exactly on the distribution of that total
(:func:`best_of_n_levels`). The paper's last result is that best-of-N with log N growing in
proportion to the length L (N = exp(δL)) has, per token, the same expected reward as the tilt
at best-of-N's KL as L → ∞ (read from the abstract and the paper's statement of that scaling;
``tests/test_kl_optimal.py`` checks it with exact sums at log N = δ·L). Pure functions of numbers;
``sampling/overopt.py`` applies them to the empirical distribution of cached samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from rewardlab.sampling.best_of_n import best_of_n_kl


@dataclass(frozen=True)
class TiltOutput:
    """φ_λ on the support: its weights, KL(φ_λ ‖ p) in nats, E_φ[r], and the λ that gave them."""

    lam: float
    weights: np.ndarray
    kl: float
    expected_reward: float


def _inputs(rewards: Sequence[float], log_probs: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and normalised base log-probabilities (uniform when None: an empirical sample)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)):
        raise ValueError("rewards must be a non-empty list of finite numbers")
    if log_probs is None:
        return r, np.full(r.size, -math.log(r.size))
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.shape != r.shape or np.any(np.isnan(lp)) or np.any(lp == np.inf) or np.all(lp == -np.inf):
        raise ValueError(f"log_probs must be {r.size} log-probabilities, not all −inf (got shape {lp.shape})")
    return r, lp - logsumexp(lp)


def tilt(rewards: Sequence[float], lam: float, log_probs: Sequence[float] | None = None) -> TiltOutput:
    """φ_λ(y) = p(y)·exp(λ r(y)) / Z(λ), with

        KL(φ_λ ‖ p) = λ·E_φ[r] − log Z(λ),   log Z(λ) = logsumexp(log p + λ r).

    ``lam = inf`` is the limit: p restricted to the outcomes of largest reward.
    """
    r, lp = _inputs(rewards, log_probs)
    if not lam >= 0:
        raise ValueError(f"λ must be ≥ 0 (got {lam})")
    if math.isinf(lam):
        top = r[lp > -np.inf].max()
        logits = np.where(r == top, lp, -np.inf)
    else:
        # shift r by its max: exp(λ(r − max)) ≤ 1, so nothing overflows; the shift cancels in φ
        logits = lp + lam * (r - r[lp > -np.inf].max())
    log_z = logsumexp(logits)
    log_phi = logits - log_z
    weights = np.exp(log_phi)
    expected = float(weights @ r)
    support = weights > 0
    kl = float(np.sum(weights[support] * (log_phi[support] - lp[support])))
    return TiltOutput(float(lam), weights, max(kl, 0.0), expected)


def max_tilt_kl(rewards: Sequence[float], log_probs: Sequence[float] | None = None) -> float:
    """sup_λ KL(φ_λ ‖ p) = −log p(r = max r): the KL of the base restricted to its best outcomes."""
    r, lp = _inputs(rewards, log_probs)
    top = r[lp > -np.inf].max()
    return float(-logsumexp(lp[r == top]))


def solve_tilt(
    rewards: Sequence[float], kl: float, log_probs: Sequence[float] | None = None, tol: float = 1e-10
) -> TiltOutput:
    """The tilt whose KL(φ_λ ‖ p) equals ``kl``: the optimum of max E_φ r s.t. KL ≤ ``kl``.

    KL(φ_λ ‖ p) rises monotonically in λ ≥ 0 (its derivative is λ·Var_φ(r)), so λ is bracketed by
    doubling and found by bisection to a relative KL error below ``tol``. A budget at or above
    :func:`max_tilt_kl` cannot be spent: the optimum is then λ = ∞ (the best outcomes).
    """
    if not kl >= 0 or math.isinf(kl):
        raise ValueError(f"the KL budget must be a finite number ≥ 0 nats (got {kl})")
    r, lp = _inputs(rewards, log_probs)
    if kl == 0:
        return tilt(r, 0.0, lp)
    if kl >= max_tilt_kl(r, lp) * (1 - tol):
        return tilt(r, math.inf, lp)
    spread = float(np.ptp(r[lp > -np.inf]))
    low, high = 0.0, 1.0 / spread
    while tilt(r, high, lp).kl < kl:
        low, high = high, 2 * high
    for _ in range(200):
        mid = 0.5 * (low + high)
        value = tilt(r, mid, lp).kl
        if abs(value - kl) <= tol * kl:
            return tilt(r, mid, lp)
        low, high = (mid, high) if value < kl else (low, mid)
    return tilt(r, 0.5 * (low + high), lp)


@dataclass(frozen=True)
class LevelsOutput:
    """Best-of-N on a discrete distribution of rewards: its distribution over the levels, E[r], KL to the base."""

    weights: np.ndarray
    kl: float
    expected_reward: float


def best_of_n_levels(levels: Sequence[float], log_probs: Sequence[float], n: float) -> LevelsOutput:
    """The exact best-of-N distribution over distinct reward ``levels`` (any N ≥ 1, even e^300).

    With F_i = P(r ≤ level_i) under the base, the best of N i.i.d. draws lands on level i with
    probability F_i^N − F_{i−1}^N; within a level it is distributed as the base (ties are broken
    exchangeably), so its KL to the base over replies equals the KL over levels, Σ π_i log(π_i/p_i)
    (Beirami et al. 2024: at most log N − (N−1)/N, with equality only without ties). log F_i comes
    from the upper tail (log1p of minus it) where F_i is near 1, so N·log F_i stays exact for huge N.
    """
    x, lp = _inputs(levels, log_probs)
    if not n >= 1:
        raise ValueError(f"N must be ≥ 1 (got {n})")
    if np.unique(x).size != x.size:
        raise ValueError("reward levels must be distinct (merge equal levels by adding their probabilities)")
    order = np.argsort(x)
    x, lp = x[order], lp[order]
    log_cdf = np.logaddexp.accumulate(lp)
    log_tail = np.append(np.logaddexp.accumulate(lp[::-1])[::-1][1:], -np.inf)  # log P(r > level_i)
    with np.errstate(divide="ignore"):
        log_f = np.where(log_tail < math.log(0.5), np.log1p(-np.exp(log_tail)), log_cdf)
    log_fn = n * log_f  # log F_i^N
    previous = np.append(-np.inf, log_fn[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pi = log_fn + np.log(-np.expm1(previous - log_fn))
    log_pi = np.where(np.isfinite(log_fn), log_pi, -np.inf)
    weights = np.exp(log_pi)
    support = weights > 0
    kl = float(np.sum(weights[support] * (log_pi[support] - lp[support])))
    back = np.empty_like(weights)
    back[order] = weights
    return LevelsOutput(back, max(kl, 0.0), float(weights @ x))


def tilt_curve(proxy: Sequence[float], gold: Sequence[float], max_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For N = 1 … max_n: E_φ[proxy], E_φ[gold] and λ of the tilt of one prompt's n samples under the proxy.

    The base is the empirical distribution (uniform over the n samples); the tilt spends the KL
    best-of-N spends, KL_bon(N) = log N − (N−1)/N, so its proxy value is the most any policy on
    these samples gets at that KL, and best-of-N's (``best_of_n_curve``) is below it.
    """
    p, g = np.asarray(proxy, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"proxy and gold must be equal-length non-empty lists (got {p.shape}, {g.shape})")
    if not 1 <= max_n <= p.size:
        raise ValueError(f"max_n must be between 1 and the number of samples {p.size} (got {max_n})")
    rows = [solve_tilt(p, best_of_n_kl(k)) for k in range(1, max_n + 1)]
    return (
        np.array([t.expected_reward for t in rows]),
        np.array([t.weights @ g for t in rows]),
        np.array([t.lam for t in rows]),
    )
