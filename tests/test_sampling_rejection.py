"""RSO (Liu et al. 2023): accepted samples follow π_sft · exp(r/β), with the paper's two limits."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.sampling.rejection import rso_accept, rso_accept_probability, rso_sample, tilted_distribution

BASE = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
REWARDS = np.array([0.0, 1.0, -0.5, 2.0, 0.5])


def accepted_frequencies(beta: float, draws: int = 400_000, seed: int = 0) -> tuple[np.ndarray, int]:
    """Draw candidates from BASE, accept with exp((r − r_max)/β), r_max the support's largest reward."""
    rng = np.random.default_rng(seed)
    candidates = rng.choice(len(BASE), size=draws, p=BASE)
    mask = rso_accept(REWARDS[candidates], beta, rng, r_max=REWARDS.max())
    counts = np.bincount(candidates[mask], minlength=len(BASE))
    return counts / counts.sum(), int(mask.sum())


@pytest.mark.parametrize("beta", [0.3, 1.0, 3.0])
def test_accepted_samples_follow_the_tilted_target(beta):
    frequencies, accepted = accepted_frequencies(beta)
    target = tilted_distribution(BASE, REWARDS, beta)
    total_variation = 0.5 * np.abs(frequencies - target).sum()
    assert accepted > 10_000
    assert total_variation < 0.01, (frequencies, target)
    # and they are not simply the base distribution
    assert 0.5 * np.abs(target - BASE).sum() > 0.05


def test_large_beta_recovers_the_base_policy_and_small_beta_the_argmax():
    frequencies, _ = accepted_frequencies(1e6)
    assert 0.5 * np.abs(frequencies - BASE).sum() < 0.01
    frequencies, _ = accepted_frequencies(1e-3)
    assert frequencies[np.argmax(REWARDS)] == 1.0
    assert tilted_distribution(BASE, REWARDS, 1e-3)[np.argmax(REWARDS)] == pytest.approx(1.0)
    assert tilted_distribution(BASE, REWARDS, 1e6) == pytest.approx(BASE, abs=1e-5)


def test_acceptance_probability_values():
    """exp((r − r_max)/β): rewards 0, 1, 2 at β=1 → e⁻², e⁻¹, 1."""
    assert rso_accept_probability([0.0, 1.0, 2.0], 1.0) == pytest.approx([np.exp(-2), np.exp(-1), 1.0])
    with pytest.raises(ValueError, match="below the largest reward"):
        rso_accept_probability([0.0, 3.0], 1.0, r_max=2.0)
    with pytest.raises(ValueError, match="beta must be positive"):
        rso_accept_probability([0.0], 0.0)


def test_algorithm_one_takes_distinct_candidates_best_first_at_small_beta():
    rng = np.random.default_rng(0)
    rewards = [0.1, 3.0, -2.0, 1.5, 0.7]
    assert rso_sample(rewards, 1e-4, 3, rng) == [1, 3, 4]  # each round accepts only its maximum
    taken = rso_sample(rewards, 1.0, 5, rng)
    assert sorted(taken) == [0, 1, 2, 3, 4]  # without replacement, stops when all are taken
    assert len(rso_sample(rewards, 1.0, 10, rng)) == 5
