"""Paired comparison of two reward models: McNemar's exact test and the paired bootstrap, on hand-counted cases."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.evaluate.paired import compare_paired, mcnemar_exact_p, verdict


def outcomes(a_only: int, b_only: int, both_right: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness arrays for the four cells of McNemar's table."""
    a = [1.0] * a_only + [0.0] * b_only + [1.0] * both_right + [0.0] * both_wrong
    b = [0.0] * a_only + [1.0] * b_only + [1.0] * both_right + [0.0] * both_wrong
    return np.array(a), np.array(b)


@pytest.mark.parametrize(
    ("a_only", "b_only", "expected"),
    [
        (10, 2, 158 / 4096),  # 2 · (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 · 79 / 4096 = 0.0386
        (2, 10, 158 / 4096),  # two-sided: symmetric
        (6, 0, 2 / 64),  # 0.03125: six to none is the fewest discordant pairs that can reach 5 %
        (5, 0, 2 / 32),  # 0.0625: five to none cannot
        (5, 5, 1.0),  # 2 · 638 / 1024 > 1, capped at 1
        (0, 0, 1.0),  # no discordant pairs: nothing tells the models apart
        (3, 1, 2 * 5 / 16),  # 2 · (1 + 4) / 16 = 0.625
    ],
)
def test_mcnemar_exact_p_matches_hand_computed_values(a_only, b_only, expected):
    assert mcnemar_exact_p(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_10_vs_2_is_0_0386():
    assert round(mcnemar_exact_p(10, 2), 4) == 0.0386


def test_mcnemar_stays_exact_for_many_discordant_pairs():
    """Python integers keep the binomial tail exact; 600 vs 400 is far beyond 5 % (normal approx. z = 6.3)."""
    p = mcnemar_exact_p(600, 400)
    assert 0 < p < 1e-8
    assert mcnemar_exact_p(500, 500) == 1.0


def test_ten_against_two_discordant_pairs_names_a_the_better_model():
    """50 pairs: 10 only A right, 2 only B right, 30 both, 8 neither → difference (10 − 2) / 50 = 0.16."""
    a, b = outcomes(10, 2, 30, 8)
    result = compare_paired(a, b, seed=0)
    assert (result.a_only, result.b_only, result.both_right, result.both_wrong, result.half_right) == (10, 2, 30, 8, 0)
    assert result.accuracy_a == pytest.approx(40 / 50) and result.accuracy_b == pytest.approx(32 / 50)
    assert result.difference == pytest.approx(0.16)
    assert result.mcnemar_p == pytest.approx(0.0386, abs=5e-5)
    assert 0 < result.ci_low < 0.16 < result.ci_high
    assert result.verdict == "A is better"
    assert compare_paired(b, a, seed=0).verdict == "B is better"


def test_identical_models_have_zero_difference_and_no_verdict():
    a, _ = outcomes(0, 0, 30, 12)
    result = compare_paired(a, a.copy())
    assert result.difference == 0 and (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.mcnemar_p == 1.0
    assert result.verdict == "no significant difference at the 5 % level"


def test_half_right_pairs_are_their_own_category():
    """A tie in score (1/2) is neither right nor wrong: counted in the difference, never discordant.

    Pairs: (1, 1/2), (1/2, 0), (1/2, 1/2), (1, 0), (0, 1) → a_only 1, b_only 1, half_right 3;
    difference = (1/2 + 1/2 + 0 + 1 − 1) / 5 = 0.2.
    """
    result = compare_paired([1, 0.5, 0.5, 1, 0], [0.5, 0, 0.5, 0, 1])
    assert (result.a_only, result.b_only, result.half_right, result.both_right, result.both_wrong) == (1, 1, 3, 0, 0)
    assert result.difference == pytest.approx(0.2)
    assert result.mcnemar_p == 1.0


def test_bootstrap_is_seeded():
    a, b = outcomes(7, 3, 20, 5)
    assert compare_paired(a, b, seed=1) == compare_paired(a, b, seed=1)


def test_a_winner_needs_both_the_test_and_the_interval():
    assert verdict(0.01, 0.02, 0.2) == "A is better"
    assert verdict(0.01, -0.2, -0.02) == "B is better"
    assert verdict(0.01, -0.01, 0.2) == "no significant difference at the 5 % level"  # interval holds 0
    assert verdict(0.2, 0.02, 0.2) == "no significant difference at the 5 % level"  # McNemar not significant
    assert verdict(0.02, 0.1, 0.2, alpha=0.01) == "no significant difference at the 1 % level"
    assert verdict(0.01, 0.02, 0.2, names=("minilm", "smollm2")) == "minilm is better"


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="same list of pairs"):
        compare_paired([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match=r"0, 0\.5 or 1"):
        compare_paired([1, 0.7], [1, 0])
    with pytest.raises(ValueError, match="no pairs"):
        compare_paired([], [])
