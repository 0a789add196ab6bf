"""The KL-constrained optimum (exponential tilt) against brute force, best-of-N below it at equal KL,
and Yang et al. 2024's asymptotic equivalence of the two in the memoryless/linear-reward setting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rewardlab.sampling.best_of_n import best_of_n_curve, best_of_n_kl
from rewardlab.sampling.kl_optimal import best_of_n_levels, max_tilt_kl, solve_tilt, tilt, tilt_curve
from rewardlab.sampling.overopt import kl_optimal_curve, sample_bon_kl


def test_tilt_exact_values():
    """p = (1/2, 1/4, 1/4), r = (0, 1, 2), λ = log 2: p·2^r = (1/2, 1/2, 1), Z = 2, so
    φ = (1/4, 1/4, 1/2), E_φ r = 1/4 + 2·1/2 = 5/4, and
    KL = 1/4·log(1/2) + 1/4·log 1 + 1/2·log 2 = (log 2)/4 = λ·E_φ r − log Z = (5/4 − 1)·log 2."""
    out = tilt([0, 1, 2], math.log(2), np.log([0.5, 0.25, 0.25]))
    assert out.weights == pytest.approx([0.25, 0.25, 0.5])
    assert out.expected_reward == pytest.approx(1.25)
    assert out.kl == pytest.approx(math.log(2) / 4)
    solved = solve_tilt([0, 1, 2], math.log(2) / 4, np.log([0.5, 0.25, 0.25]))
    assert solved.lam == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tilt_matches_brute_force_and_solves_the_kl(seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(7))
    r = rng.normal(size=7)
    for lam in (0.0, 0.3, 2.0, 9.0):
        phi = p * np.exp(lam * r)
        phi /= phi.sum()
        out = tilt(r, lam, np.log(p))
        assert out.weights == pytest.approx(phi, rel=1e-9, abs=1e-15)
        assert out.expected_reward == pytest.approx(phi @ r)
        assert out.kl == pytest.approx(np.sum(phi * np.log(phi / p)))
    for budget in (1e-4, 0.1, 0.5, 0.9 * max_tilt_kl(r, np.log(p))):
        assert solve_tilt(r, budget, np.log(p)).kl == pytest.approx(budget, rel=1e-8)


def test_extreme_lambda_and_budget_stay_finite():
    """λ = 1e6 on rewards 1 apart is the base restricted to the best outcomes; so is any budget
    above −log p(best) = −log(0.3) (the base's mass on the top reward, two outcomes 0.1 + 0.2)."""
    r, p = [0.0, 1.0, 2.0, 2.0], np.log([0.5, 0.2, 0.1, 0.2])
    far = tilt(r, 1e6, p)
    assert far.weights == pytest.approx([0, 0, 1 / 3, 2 / 3])
    assert max_tilt_kl(r, p) == pytest.approx(-math.log(0.3))
    assert far.kl == pytest.approx(-math.log(0.3))
    capped = solve_tilt(r, 5.0, p)
    assert math.isinf(capped.lam) and capped.expected_reward == pytest.approx(2.0)
    tiny = tilt([0.0, 1.0], 0.5, [math.log(1e-300), 0.0])
    assert np.all(np.isfinite(tiny.weights)) and tiny.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tilt([], 1.0), "non-empty"),
        (lambda: tilt([1.0, 2.0], -1.0), "λ must be ≥ 0"),
        (lambda: solve_tilt([1.0, 2.0], -0.1), "KL budget"),
        (lambda: tilt([1.0, 2.0], 1.0, [0.0]), "log_probs must be 2"),
        (lambda: best_of_n_levels([1.0, 1.0], [0.0, 0.0], 2), "distinct"),
        (lambda: best_of_n_levels([1.0, 2.0], [0.0, 0.0], 0.5), "N must be ≥ 1"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def brute_force_best_of_n(levels: list[float], p: list[float], n: int) -> np.ndarray:
    """P(max of N draws = level_i), summing p over every N-tuple of outcomes."""
    out = np.zeros(len(levels))
    for draw in itertools.product(range(len(levels)), repeat=n):
        best = max(draw, key=lambda i: levels[i])
        out[best] += np.prod([p[i] for i in draw])
    return out


def test_best_of_n_levels_matches_enumeration():
    """Levels (2, 0, 1) with p = (0.2, 0.5, 0.3), N = 3: P(max = 0) = 0.5³ = 0.125,
    P(max ≤ 1) = 0.8³ = 0.512 so P(max = 1) = 0.387, P(max = 2) = 1 − 0.512 = 0.488."""
    levels, p = [2.0, 0.0, 1.0], [0.2, 0.5, 0.3]
    out = best_of_n_levels(levels, np.log(p), 3)
    assert out.weights == pytest.approx([0.488, 0.125, 0.387])
    assert out.weights == pytest.approx(brute_force_best_of_n(levels, p, 3))
    assert out.expected_reward == pytest.approx(2 * 0.488 + 0.387)
    assert out.kl == pytest.approx(np.sum(out.weights * np.log(out.weights / p)))
    assert out.kl <= best_of_n_kl(3)  # Beirami et al. 2024: the formula bounds the exact KL


@pytest.mark.parametrize("seed", range(6))
def test_the_optimum_beats_best_of_n_at_equal_kl(seed):
    """Optimality (Yang et al. 2024): no policy at KL ≤ Δ beats the tilt, best-of-N included;
    exact distributions, N from 2 to 10⁶."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(3, 40))
    levels, p = rng.normal(size=size), rng.dirichlet(np.ones(size))
    for n in (2, 4, 16, 1000, 10**6):
        bon = best_of_n_levels(levels, np.log(p), n)
        optimum = solve_tilt(levels, bon.kl, np.log(p))
        assert optimum.kl == pytest.approx(bon.kl, rel=1e-6) or math.isinf(optimum.lam)
        assert optimum.expected_reward >= bon.expected_reward - 1e-9


TOKEN_P = np.array([0.5, 0.3, 0.2])
TOKEN_R = np.array([0.0, 1.0, 2.0])


def total_reward_log_pmf(length: int) -> np.ndarray:
    """log P(R = k), k = 0 … 2L, for R the sum of L i.i.d. token rewards (exact convolution in log space)."""
    log_pmf = np.array([0.0])
    for _ in range(length):
        new = np.full(log_pmf.size + 2, -np.inf)
        for reward, prob in zip(TOKEN_R.astype(int), TOKEN_P, strict=True):
            new[reward : reward + log_pmf.size] = np.logaddexp(
                new[reward : reward + log_pmf.size], log_pmf + math.log(prob)
            )
        log_pmf = new
    return log_pmf


def test_best_of_n_approaches_the_optimum_for_long_memoryless_replies():
    """Yang et al. 2024, memoryless LM and linear reward: tokens i.i.d. from p = (0.5, 0.3, 0.2) with
    rewards (0, 1, 2), a reply's reward the sum over its L tokens, and best-of-N with log N = δ·L
    (δ = 0.25 nats per token, N up to e^256). Computed exactly on the distribution of the total:
    the optimum at best-of-N's exact KL always gains more than best-of-N, and the ratio of the
    gains over E_p R falls to 1 as L grows (1.054 at L = 32, 1.005 at L = 1024 measured), as does
    the per-token reward gap. The tilt factorises over tokens, so E_φ R = L·E_{p_λ}[r] is a check."""
    delta, ratios, per_token_gaps = 0.25, [], []
    for length in (32, 128, 512, 1024):
        log_pmf = total_reward_log_pmf(length)
        levels = np.arange(log_pmf.size, dtype=np.float64)
        bon = best_of_n_levels(levels, log_pmf, math.exp(delta * length))
        assert bon.weights.sum() == pytest.approx(1.0)
        optimum = solve_tilt(levels, bon.kl, log_pmf)
        base = length * float(TOKEN_P @ TOKEN_R)
        per_token = tilt(TOKEN_R, optimum.lam, np.log(TOKEN_P))
        assert optimum.expected_reward == pytest.approx(length * per_token.expected_reward, rel=1e-8)
        assert optimum.kl == pytest.approx(length * per_token.kl, rel=1e-6)
        ratios.append((optimum.expected_reward - base) / (bon.expected_reward - base))
        per_token_gaps.append((optimum.expected_reward - bon.expected_reward) / length)
    assert all(r > 1 for r in ratios)
    assert all(a > b for a, b in itertools.pairwise(ratios)), ratios
    assert all(a > b for a, b in itertools.pairwise(per_token_gaps)), per_token_gaps
    assert ratios[0] > 1.03 and ratios[-1] < 1.01, ratios


def test_tilt_curve_on_samples_and_the_overopt_summary():
    """On one prompt's samples the tilt starts at the plain mean (λ = 0 at KL_bon(1) = 0), and at the
    KL of the best-of-N estimator's own weights it is never below best-of-N's expected proxy score."""
    rng = np.random.default_rng(0)
    n, prompts = 12, 4
    proxy = rng.normal(size=n * prompts)
    gold = proxy + rng.normal(size=n * prompts)
    values, judged, lam = tilt_curve(proxy[:n], gold[:n], n)
    assert values[0] == pytest.approx(proxy[:n].mean()) and judged[0] == pytest.approx(gold[:n].mean())
    assert lam[0] == 0.0 and all(b >= a for a, b in itertools.pairwise(values))
    sample_kl = sample_bon_kl(n, n)
    assert sample_kl[0] == pytest.approx(0.0, abs=1e-12) and sample_kl[-1] == pytest.approx(math.log(n))
    summary = kl_optimal_curve(proxy, gold, n, n)
    bon = np.mean([best_of_n_curve(proxy[i : i + n], proxy[i : i + n]) for i in range(0, n * prompts, n)], axis=0)
    assert all(t >= b - 1e-9 for t, b in zip(summary["proxy_at_sample_kl"], bon, strict=True))
    assert summary["proxy_at_sample_kl"][-1] == pytest.approx(bon[-1])  # both the maximum at N = n
