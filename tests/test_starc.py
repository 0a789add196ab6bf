"""STARC distance: the invariances the paper builds in, and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.evaluate.starc import canonicalise, standardise, starc_distance


@pytest.fixture
def sample() -> tuple[np.ndarray, list[str], np.random.Generator]:
    """Rewards for 4 replies to each of 50 prompts, and the prompt of each reply."""
    rng = np.random.default_rng(0)
    prompts = [f"prompt {i // 4}" for i in range(200)]
    return rng.normal(size=200), prompts, rng


def test_positive_scaling_and_per_prompt_shifts_give_distance_zero(sample):
    rewards, prompts, rng = sample
    shift = {p: rng.normal(0, 10) for p in set(prompts)}
    other = 3.7 * rewards + np.array([shift[p] for p in prompts])
    assert starc_distance(rewards, other, prompts) == pytest.approx(0.0, abs=1e-12)


def test_negation_gives_the_maximum_distance(sample):
    rewards, prompts, _ = sample
    assert starc_distance(rewards, -rewards, prompts) == pytest.approx(1.0, abs=1e-12)
    assert starc_distance(rewards, -0.01 * rewards + 5, prompts) == pytest.approx(1.0, abs=1e-12)


def test_distance_is_symmetric_and_strictly_between_for_unrelated_rewards(sample):
    rewards, prompts, rng = sample
    other = rng.normal(size=rewards.size)
    d = starc_distance(rewards, other, prompts)
    assert d == starc_distance(other, rewards, prompts)
    assert 0.1 < d < 0.9  # independent rewards: about 1/√2 ≈ 0.71


def test_hand_computed_three_replies():
    """One prompt, rewards a = (1, 0, 0) and b = (0, 1, 0).

    c(a) = (2, −1, −1)/3, s(a) = (2, −1, −1)/√6; s(b) = (−1, 2, −1)/√6;
    ‖s(a) − s(b)‖ = ‖(3, −3, 0)‖/√6 = √3, so d = √3 / 2 ≈ 0.866.
    """
    assert canonicalise([1, 0, 0], ["x"] * 3) == pytest.approx([2 / 3, -1 / 3, -1 / 3])
    assert standardise([1, 0, 0], ["x"] * 3) == pytest.approx(np.array([2, -1, -1]) / math.sqrt(6))
    assert starc_distance([1, 0, 0], [0, 1, 0], ["x"] * 3) == pytest.approx(math.sqrt(3) / 2)


def test_a_reward_constant_within_each_prompt_standardises_to_zero():
    """The paper's convention: s(R) = c(R) when c(R) = 0, so d to any non-trivial reward is ‖s‖ / 2 = 1/2."""
    prompts = ["x", "x", "y", "y"]
    constant = [0.1, 0.1, 7.3, 7.3]
    assert standardise(constant, prompts).tolist() == [0.0] * 4
    assert starc_distance(constant, [1.0, 0.0, 0.0, 2.0], prompts) == pytest.approx(0.5)


def test_prompts_with_one_reply_carry_no_information():
    with pytest.raises(ValueError, match="two or more scored replies"):
        starc_distance([1.0, 2.0], [2.0, 1.0], ["x", "y"])
    with pytest.raises(ValueError, match="one prompt id per reward"):
        starc_distance([1.0, 2.0], [2.0, 1.0], ["x"])
    with pytest.raises(ValueError, match="same sample"):
        starc_distance([1.0, 2.0], [2.0, 1.0, 3.0], ["x", "x"])
