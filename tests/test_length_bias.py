"""Length bias: accuracy split by which reply is longer, and the reward-length rank correlation."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_pairs

from rewardlab.evaluate.bias import length_bias, reward_length_spearman


def test_a_reward_that_is_the_length_is_right_exactly_when_the_chosen_reply_is_longer():
    rows = synthetic_pairs(60, seed=5, words=6)
    rows = [{**r, "chosen": r["chosen"] + " extra" * (i % 3)} for i, r in enumerate(rows)]  # vary the lengths
    chosen_lengths = [len(r["chosen"]) for r in rows]
    rejected_lengths = [len(r["rejected"]) for r in rows]
    result = length_bias(chosen_lengths, rejected_lengths, chosen_lengths, rejected_lengths)  # reward = length
    longer = sum(c > r for c, r in zip(chosen_lengths, rejected_lengths, strict=True))
    shorter = sum(c < r for c, r in zip(chosen_lengths, rejected_lengths, strict=True))
    assert longer > 5 and shorter > 5, "both groups must be populated for the test to mean anything"
    assert (result.chosen_longer.accuracy, result.chosen_longer.n) == (1.0, longer)
    assert (result.chosen_shorter.accuracy, result.chosen_shorter.n) == (0.0, shorter)
    # all right (all wrong) on n pairs: the Wilson interval is not the bootstrap's degenerate 1.0–1.0,
    # its lower end is n / (n + z²) (upper end z² / (n + z²) for all wrong), z = 1.959964
    z2 = 1.959963984540054**2
    assert result.chosen_longer.ci_low == pytest.approx(longer / (longer + z2))
    assert result.chosen_shorter.ci_high == pytest.approx(z2 / (shorter + z2))
    assert (result.chosen_longer.ci_high, result.chosen_shorter.ci_low) == (1.0, 0.0)
    assert result.equal_length == 60 - longer - shorter
    assert result.reward_length_spearman == pytest.approx(1.0)
    assert result.unit == "characters"


def test_hand_computed_groups():
    """Pairs (chosen len, rejected len; chosen reward, rejected reward):
    (10, 5; 1, 0) right, (10, 5; 0, 1) wrong, (10, 5; 2, 2) tie → chosen-longer accuracy 1.5 / 3 = 0.5;
    (3, 8; 1, 0) right → chosen-shorter accuracy 1; (4, 4; …) equal length, in neither group.
    """
    result = length_bias([1, 0, 2, 1, 5], [0, 1, 2, 0, 3], [10, 10, 10, 3, 4], [5, 5, 5, 8, 4], unit="tokens")
    assert (result.chosen_longer.accuracy, result.chosen_longer.n) == (0.5, 3)
    assert (result.chosen_shorter.accuracy, result.chosen_shorter.n) == (1.0, 1)
    assert result.equal_length == 1 and result.unit == "tokens"


def test_spearman_signs_and_degenerate_cases():
    lengths = np.array([3, 10, 7, 20, 1])
    assert reward_length_spearman(-lengths, lengths) == pytest.approx(-1.0)
    assert reward_length_spearman(np.log(lengths), lengths) == pytest.approx(1.0)  # ranks, not values
    # ranks 1..4 against 2, 1, 4, 3: ρ = 1 − 6 · Σd² / (n (n² − 1)) = 1 − 6 · 4 / 60 = 0.6
    assert reward_length_spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert np.isnan(reward_length_spearman([1, 1, 1], [1, 2, 3]))  # a constant reward has no ranking


def test_mismatched_arrays_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        length_bias([1, 2], [0, 1], [5, 5, 5], [4, 4])
