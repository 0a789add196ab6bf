"""Calibration of Bradley-Terry preference probabilities: exact values, and temperature scaling on a known model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.calibration import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    preference_nll,
    preference_probabilities,
    temperature_scaled,
)
from rewardlab.evaluate.pairwise import summarise_scores


def bradley_terry_sample(n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs judged by a Bradley-Terry annotator with temperature T*, listed preferred reply first.

    The model's gap g between two replies ~ N(0, 3²); the annotator prefers the first with
    probability σ(g / T*). The preferred one becomes ``chosen``, so the recorded chosen − rejected
    gap is g or −g and every label is 1, as in real evaluation data.
    """
    rng = np.random.default_rng(seed)
    gaps = rng.normal(0, 3, n)
    first_wins = rng.random(n) < expit(gaps / temperature)
    oriented = np.where(first_wins, gaps, -gaps)
    return oriented, np.zeros(n)  # chosen rewards = oriented gaps, rejected rewards = 0


def test_probabilities_are_bradley_terry_with_temperature():
    assert preference_probabilities([1.0], [1.0]).tolist() == [0.5]
    assert preference_probabilities([2.0], [0.0])[0] == pytest.approx(1 / (1 + np.exp(-2)))
    assert preference_probabilities([2.0], [0.0], temperature=2)[0] == pytest.approx(1 / (1 + np.exp(-1)))
    with pytest.raises(ValueError, match="temperature must be positive"):
        preference_probabilities([1.0], [0.0], temperature=0)


def test_brier_of_always_one_half_is_a_quarter():
    assert brier_score(np.full(7, 0.5)) == 0.25
    assert brier_score(np.full(4, 0.5), labels=[1, 0, 0, 1]) == 0.25
    assert brier_score([0.9, 0.2], labels=[1, 0]) == pytest.approx((0.01 + 0.04) / 2)


def test_ece_hand_computed():
    """p = 0.92, 0.92, 0.17, 0.63, all labels 1; 10 bins of width 0.05 over confidence [0.5, 1].

    confidence 0.92, 0.92, 0.83, 0.63; correct 1, 1, 0 (p < 1/2 favours the rejected reply), 1.
    bin [0.90, 0.95): 2/4 · |1 − 0.92| = 0.04; bin [0.80, 0.85): 1/4 · |0 − 0.83| = 0.2075;
    bin [0.60, 0.65): 1/4 · |1 − 0.63| = 0.0925; ECE = 0.34.
    """
    assert expected_calibration_error([0.92, 0.92, 0.17, 0.63]) == pytest.approx(0.34)
    assert expected_calibration_error([0.92, 0.92, 0.17, 0.63], bins=1) == pytest.approx(abs(3 - 3.3) / 4)


def test_metrics_do_not_depend_on_which_reply_is_listed_first():
    p = np.array([0.92, 0.3, 0.55, 0.71])
    labels = np.array([1, 0, 1, 1])
    assert expected_calibration_error(1 - p, 1 - labels) == pytest.approx(expected_calibration_error(p, labels))
    assert brier_score(1 - p, 1 - labels) == pytest.approx(brier_score(p, labels))
    gaps = np.array([2.0, -1.0, 0.5])
    assert preference_nll(-gaps, 1.5, [0, 0, 0]) == pytest.approx(preference_nll(gaps, 1.5))


def test_a_calibrated_model_has_ece_near_zero():
    chosen, rejected = bradley_terry_sample(100_000, temperature=1.0, seed=0)
    assert calibration_metrics(chosen, rejected).ece < 0.01
    assert fit_temperature(chosen, rejected) == pytest.approx(1.0, rel=0.05)


def test_temperature_scaling_recovers_the_true_temperature_and_lowers_ece():
    """An annotator at T* = 2 makes raw rewards overconfident; the fit finds T ≈ 2 on validation pairs."""
    val_chosen, val_rejected = bradley_terry_sample(20_000, temperature=2.0, seed=1)
    chosen, rejected = bradley_terry_sample(20_000, temperature=2.0, seed=2)
    assert fit_temperature(val_chosen, val_rejected) == pytest.approx(2.0, rel=0.10)
    raw = calibration_metrics(chosen, rejected)
    scaled = temperature_scaled(chosen, rejected, val_chosen, val_rejected)
    assert scaled.temperature == pytest.approx(2.0, rel=0.10) and raw.temperature == 1.0
    assert scaled.ece < raw.ece / 3 and scaled.ece < 0.02
    assert scaled.nll < raw.nll and scaled.brier < raw.brier


def test_temperature_fit_limits():
    with pytest.raises(ValueError, match="reward gap of 0"):
        fit_temperature([1.0, 2.0], [1.0, 2.0])
    # every validation pair ordered right: the NLL falls all the way to the lower bound, 1e-3 · g_rms,
    # with g_rms = √((1² + 2²) / 2)
    assert fit_temperature([2.0, 3.0], [1.0, 1.0]) == pytest.approx(1e-3 * math.sqrt(2.5), rel=1e-3)


def test_the_fitted_temperature_follows_the_reward_scale():
    """Multiplying every reward by c multiplies the fitted T by c, from untrained-head gaps (1e-5) to 1e4."""
    chosen, rejected = bradley_terry_sample(2_000, temperature=2.0, seed=5)
    reference = fit_temperature(chosen, rejected)
    for c in (1e-5, 1e4):
        assert fit_temperature(c * chosen, c * rejected) == pytest.approx(c * reference, rel=1e-4)


def test_labels_must_be_zero_or_one_per_pair():
    with pytest.raises(ValueError, match="one 0 or 1 per pair"):
        brier_score([0.5, 0.5], labels=[1, 2])
    with pytest.raises(ValueError, match="one 0 or 1 per pair"):
        brier_score([0.5, 0.5], labels=[1])


def test_pairwise_eval_reports_calibration_and_scales_only_with_validation_scores():
    pairs = [PreferencePair(f"q{i}", "good " * (i % 3 + 1), "bad " * (i % 2 + 1)) for i in range(40)]
    pairs.append(PreferencePair("q-tie", "a", "b", tie=True))
    rng = np.random.default_rng(3)
    chosen, rejected = rng.normal(1, 2, 41).tolist(), rng.normal(0, 2, 41).tolist()
    plain = summarise_scores(pairs, chosen, rejected, precision="fp32")
    assert plain.calibrated is None
    assert plain.calibration == calibration_metrics(chosen[:40], rejected[:40])  # the tie-labelled pair is left out
    val_chosen, val_rejected = bradley_terry_sample(500, temperature=2.0, seed=4)
    scaled = summarise_scores(pairs, chosen, rejected, precision="fp32", validation_scores=(val_chosen, val_rejected))
    assert scaled.calibrated.temperature == pytest.approx(fit_temperature(val_chosen, val_rejected))
    assert scaled.to_dict()["calibrated"]["temperature"] == scaled.calibrated.temperature
