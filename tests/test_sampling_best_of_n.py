"""Best-of-N: the analytic KL against exact enumeration, and Gao et al.'s estimator against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rewardlab.sampling.best_of_n import best_of_n_curve, best_of_n_kl, best_of_n_weights


def exact_best_of_n_kl(outcomes: int, n: int) -> float:
    """KL(π_bon ‖ π) for π uniform over ``outcomes`` replies with distinct rewards.

    The best of N draws is the k-th worst reply with probability (k/M)^N − ((k−1)/M)^N, so
    KL = Σ_k p_k · log(p_k · M).
    """
    k = np.arange(1, outcomes + 1)
    p = (k / outcomes) ** n - ((k - 1) / outcomes) ** n
    p = p[p > 0]
    return float(np.sum(p * np.log(p * outcomes)))


def test_kl_formula_values():
    """log N − (N−1)/N: N=1 → 0, N=2 → log 2 − 1/2, N=64 → log 64 − 63/64."""
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(64) == pytest.approx(4.1588830834 - 0.984375)


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_kl_formula_bounds_the_exact_kl_and_is_reached_as_outcomes_grow(n):
    """Beirami et al. 2024: the formula is an upper bound, tight as the number of outcomes M grows."""
    bound = best_of_n_kl(n)
    gaps = []
    for outcomes in (2, 10, 100, 1_000, 100_000):
        exact = exact_best_of_n_kl(outcomes, n)
        assert exact <= bound + 1e-12
        gaps.append(bound - exact)
    if n == 1:
        assert gaps == pytest.approx([0.0] * len(gaps), abs=1e-12)
    else:
        assert all(a > b for a, b in itertools.pairwise(gaps)), gaps  # strictly closer with every M
        assert gaps[-1] < 1e-3 * max(bound, 1e-3) + 1e-3


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_kl_rejects_bad_n(bad):
    with pytest.raises(ValueError, match="positive integer"):
        best_of_n_kl(bad)


def brute_force_best_of_n(proxy: list[float], gold: list[float], n: int) -> float:
    """Average, over every N-subset of the samples, of the gold reward of the subset's proxy winner."""
    values = [gold[max(subset, key=lambda i: proxy[i])] for subset in itertools.combinations(range(len(proxy)), n)]
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(5))
def test_estimator_matches_enumerating_every_subset(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 10))
    proxy = rng.permutation(size).astype(float).tolist()  # distinct proxy values: one winner per subset
    gold = rng.normal(size=size).tolist()
    curve = best_of_n_curve(proxy, gold)
    assert len(curve) == size
    for n in range(1, size + 1):
        assert curve[n - 1] == pytest.approx(brute_force_best_of_n(proxy, gold, n), abs=1e-12)


def test_estimator_end_points_and_weights():
    """N=1 is the plain mean; N=n is the gold reward of the proxy's single best sample."""
    proxy, gold = [0.3, -1.0, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]
    curve = best_of_n_curve(proxy, gold)
    assert curve[0] == pytest.approx(2.5)
    assert curve[-1] == pytest.approx(3.0)
    # n=4, N=2: sorted weights C(i-1, 1)/C(4, 2) = 0, 1/6, 2/6, 3/6
    assert best_of_n_weights(4, 2) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    for n in (1, 7, 300):
        for big_n in (1, n // 2 or 1, n):
            assert best_of_n_weights(n, big_n).sum() == pytest.approx(1.0)


def test_proxy_against_itself_rises_with_n():
    """The expected maximum of N draws never falls as N grows."""
    proxy = np.random.default_rng(0).normal(size=64)
    curve = best_of_n_curve(proxy, proxy)
    assert np.all(np.diff(curve) >= -1e-12)
    assert curve[-1] == pytest.approx(proxy.max())


def test_estimator_rejects_bad_input():
    with pytest.raises(ValueError, match="equal-length"):
        best_of_n_curve([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="max_n"):
        best_of_n_curve([1.0, 2.0], [1.0, 2.0], max_n=3)
    with pytest.raises(ValueError, match="1 ≤ N ≤ n"):
        best_of_n_weights(3, 4)
