"""Curation of noisy labels, the pure maths: ensemble strength, each method's decisions, peer review,
the review queue, and the noise helpers, on hand-computed cases and on synthetic pairs with a known
true reward and known flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.curation import (
    curriculum_order,
    decide,
    flag_quality,
    flip_pair,
    gold_errors,
    inject_flips,
    judge_margins,
    peer_halves,
    preference_strength,
    review_order,
    review_priority,
)
from rewardlab.data.records import PreferencePair


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_strength_exact_values():
    """3 members, 2 pairs. Pair 0: margins 2, 0, 1 → μ = 1, σ = sqrt((1 + 1 + 0)/3) = sqrt(2/3) ≈ 0.8165,
    p = (σ(2) + σ(0) + σ(1))/3 = (0.880797 + 0.5 + 0.731059)/3 ≈ 0.703952, agreement 2/3 (0 is not > 0).
    Pair 1: margins −3, −3, −3 → μ = −3, σ = 0, p = σ(−3) ≈ 0.047426, unanimous."""
    s = preference_strength([[2, -3], [0, -3], [1, -3]])
    assert s.mean.tolist() == pytest.approx([1, -3])
    assert s.std.tolist() == pytest.approx([math.sqrt(2 / 3), 0])
    assert s.probability.tolist() == pytest.approx([0.703952, 0.047426], abs=1e-6)
    assert s.agreement.tolist() == pytest.approx([2 / 3, 1])
    big = preference_strength([[800.0], [-800.0]])  # σ(±800) without overflow
    assert big.probability.tolist() == pytest.approx([0.5])
    with pytest.raises(ValueError, match="members, pairs"):
        preference_strength([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        preference_strength([[float("nan")]])


def noisy_ensemble(pairs: int, rate: float, members: int, noise: float, seed: int):
    """Synthetic pairs with a known true reward gap u (|u| ~ 1 + Exp(1), the label's chosen the better
    reply) and a seeded share of flipped labels; member m's margin for the label as given is
    sign·u + noise·ε_m, sign = −1 on flipped pairs. Returns (member margins, flipped indices)."""
    rng = np.random.default_rng(seed)
    gap = 1 + rng.exponential(size=pairs)
    sign = np.ones(pairs)
    flipped = rng.choice(pairs, size=round(rate * pairs), replace=False)
    sign[flipped] = -1
    return sign * gap + noise * rng.normal(size=(members, pairs)), set(flipped.tolist())


def test_strength_finds_known_flips_and_an_ensemble_beats_one_member():
    """Secrets of RLHF Part II: strongly negative strength marks wrong labels. With member noise σ = 1.5
    around true gaps ≥ 1, flagging μ < −0.5 finds most of the 20 % flips with few false alarms, and
    the 5-member mean (noise σ/√5) does better than one member on both counts."""
    margins, flipped = noisy_ensemble(4000, 0.2, 5, 1.5, seed=0)
    ensemble = preference_strength(margins)
    one = preference_strength(margins[:1])
    q_ens = flag_quality(np.flatnonzero(ensemble.mean < -0.5).tolist(), flipped)
    q_one = flag_quality(np.flatnonzero(one.mean < -0.5).tolist(), flipped)
    assert q_ens.precision > 0.9 and q_ens.recall > 0.75
    assert q_ens.precision > q_one.precision and q_ens.recall > q_one.recall
    # wrong labels are the ones the ensemble calls unlikely: mean soft label far lower on flips
    is_flip = np.isin(np.arange(4000), list(flipped))
    assert ensemble.probability[is_flip].mean() < 0.3 < 0.7 < ensemble.probability[~is_flip].mean()


def test_flag_quality_exact_values():
    """Flagged {1, 2, 3, 4}, truth {2, 4, 6}: found {2, 4} → precision 2/4, recall 2/3, F1 = 2·½·⅔/(½+⅔) = 4/7."""
    q = flag_quality([1, 2, 3, 4], [2, 4, 6])
    assert (q.flagged, q.truth, q.found) == (4, 3, 2)
    assert q.precision == pytest.approx(0.5) and q.recall == pytest.approx(2 / 3) and q.f1 == pytest.approx(4 / 7)
    assert flag_quality([], [1]).precision is None and flag_quality([], [1]).recall == 0
    assert flag_quality([1], []).recall is None


def pair(i: int, tie: bool = False) -> PreferencePair:
    return PreferencePair(f"prompt {i}", f"good {i}", f"bad {i}", tie=tie, id=str(i))


def test_inject_flips_is_seeded_and_exact():
    pairs = [pair(i) for i in range(50)] + [pair(99, tie=True)]
    noisy, flipped = inject_flips(pairs, 0.2, seed=3)
    assert len(flipped) == 10 and flipped == sorted(flipped) and 50 not in flipped  # the tie cannot flip
    assert inject_flips(pairs, 0.2, seed=3)[1] == flipped != inject_flips(pairs, 0.2, seed=4)[1]
    for i, (before, after) in enumerate(zip(pairs, noisy, strict=True)):
        expected = (before.rejected, before.chosen) if i in flipped else (before.chosen, before.rejected)
        assert (after.chosen, after.rejected) == expected
    assert flip_pair(flip_pair(pairs[0])) == pairs[0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        inject_flips(pairs, 1.5, seed=0)


MEAN = [2.0, -1.0, -0.2, 0.1, -5.0]
PROBABILITY = [0.9, 0.2, 0.45, 0.55, 0.01]
TIE = [False, False, False, False, True]


def test_flip_reverses_only_strongly_negative_pairs():
    """threshold 0.5: only μ = −1 is below −0.5 (the tie, μ = −5, carries no order and is kept).
    Strength written for the written order: 0.9; 1 − 0.2 = 0.8 (reversed); max(0.45, ½) = ½; 0.55."""
    d = decide("flip", MEAN, PROBABILITY, TIE, threshold=0.5)
    assert [x.action for x in d] == ["kept", "flipped", "kept", "kept", "kept"]
    assert [x.reversed for x in d] == [False, True, False, False, False]
    assert [x.strength for x in d] == pytest.approx([0.9, 0.8, 0.5, 0.55, None])
    tight = decide("flip", MEAN, PROBABILITY, TIE, threshold=0.1)
    assert [x.action for x in tight[:3]] == ["kept", "flipped", "flipped"]


def test_drop_removes_the_flagged_and_a_negative_threshold_drops_weak_ones():
    """threshold 0.5 drops μ = −1 only; threshold −0.15 drops every μ < 0.15: −1, −0.2 and 0.1."""
    assert [x.action for x in decide("drop", MEAN, PROBABILITY, TIE)] == ["kept", "dropped", "kept", "kept", "kept"]
    loose = decide("drop", MEAN, PROBABILITY, TIE, threshold=-0.15)
    assert [x.action for x in loose] == ["kept", "dropped", "dropped", "dropped", "kept"]


def test_soft_keeps_every_pair_with_a_mixed_label():
    """w = ½: s = ½ + ½·p = 0.95, 0.6, 0.725, 0.775 (none below ½, none reversed). w = 1: s = p, so
    p = 0.2 and 0.45 are written reversed with strength 0.8 and 0.55."""
    d = decide("soft", MEAN, PROBABILITY, TIE)
    assert [x.action for x in d[:4]] == ["softened"] * 4 and d[4].action == "kept"
    assert [x.strength for x in d[:4]] == pytest.approx([0.95, 0.6, 0.725, 0.775])
    assert not any(x.reversed for x in d)
    full = decide("soft", MEAN, PROBABILITY, TIE, ensemble_weight=1.0)
    assert [x.reversed for x in full[:4]] == [False, True, True, False]
    assert [x.strength for x in full[:4]] == pytest.approx([0.9, 0.8, 0.55, 0.55])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="--method must be one of flip, drop, soft, peer-review"):
        decide("flop", MEAN, PROBABILITY, TIE)
    with pytest.raises(ValueError, match="--ensemble-weight"):
        decide("soft", MEAN, PROBABILITY, TIE, ensemble_weight=2)
    with pytest.raises(ValueError, match="--threshold"):
        decide("flip", MEAN, PROBABILITY, TIE, threshold=float("nan"))


def test_peer_judges_the_other_half():
    """Margins of A = 1, 2, 3, 4 and B = their negatives; halves 0, 1, 0, 1: a half-0 pair (A trained on
    it) is judged by B → −1, −3; a half-1 pair by A → 2, 4. Self-judging takes the other entries."""
    margins, halves = [[1, 2, 3, 4], [-1, -2, -3, -4]], np.array([0, 1, 0, 1])
    assert judge_margins(margins, halves).tolist() == [-1, 2, -3, 4]
    assert judge_margins(margins, halves, "self").tolist() == [1, -2, 3, -4]
    with pytest.raises(ValueError, match="exactly two models"):
        judge_margins([[1, 2, 3, 4]], halves)


def test_peer_review_finds_flips_a_model_memorised_and_self_filtering_misses():
    """Two Minds Better Than One: a model fits its own training pairs' noise. Model A's margin on its
    own half is +2 for every pair, flipped or not (memorised), and on the other half the true
    sign·gap plus noise; B likewise. Peer review (each pair judged by the model that did not train on
    it) recovers the flips; self-filtering flags nothing."""
    rng = np.random.default_rng(1)
    pairs = [pair(i) for i in range(2000)]
    halves = peer_halves(pairs, seed=0)
    honest, flipped = noisy_ensemble(2000, 0.3, 2, 0.5, seed=2)
    margins = np.where(np.arange(2)[:, None] == halves[None, :], 2.0 + 0.1 * rng.normal(size=(2, 2000)), honest)
    peer = flag_quality(np.flatnonzero(judge_margins(margins, halves) < -0.5).tolist(), flipped)
    self_ = flag_quality(np.flatnonzero(judge_margins(margins, halves, "self") < -0.5).tolist(), flipped)
    assert peer.precision > 0.95 and peer.recall > 0.9
    assert self_.flagged == 0


def test_peer_halves_are_seeded_stable_and_balanced():
    pairs = [pair(i) for i in range(1000)]
    halves = peer_halves(pairs, seed=0)
    assert set(halves.tolist()) == {0, 1} and 0.45 < halves.mean() < 0.55
    assert peer_halves(pairs[::-1], seed=0).tolist() == halves[::-1].tolist()  # by content, not by position
    assert peer_halves(pairs, seed=1).tolist() != halves.tolist()


def test_curriculum_goes_from_easy_to_hard():
    assert curriculum_order([0.5, 3.0, -1.0, 3.0]) == [1, 3, 0, 2]


def test_review_queue_ranks_by_doubt_then_spread():
    """p = 0.9, 0.1, 0.5, 0.5, 0.3 → doubt 0.1, 0.9, 0.5, 0.5, 0.7; the two at 0.5 are ordered by σ
    (0.2 before 0.1): queue 1, 4, 3, 2 with budget 4."""
    priority = review_priority([0.9, 0.1, 0.5, 0.5, 0.3])
    assert priority.tolist() == pytest.approx([0.1, 0.9, 0.5, 0.5, 0.7])
    assert review_order(priority, np.array([0, 0, 0.1, 0.2, 0]), budget=4) == [1, 4, 3, 2]
    with pytest.raises(ValueError, match="--budget"):
        review_order(priority, np.zeros(5), budget=0)


def test_gold_error_analysis_sends_the_subsets_the_ensemble_gets_wrong_to_people():
    """Gold p = 0.9, 0.2, 0.7 (subset a), 0.3 (b): a has 1 error in 3 → (1+1)/(3+2) = 0.4; b 1 in 1 →
    2/3; overall (2+1)/(4+2) = ½ (for an unseen subset). Two pairs of equal doubt 0.2 (p = 0.8), in a
    and b: priorities ½·0.2 + ½·0.4 = 0.3 and ½·0.2 + ½·⅔ ≈ 0.4333; in subset c, 0.35."""
    gold = gold_errors([0.9, 0.2, 0.7, 0.3], ["a", "a", "a", "b"])
    assert gold.rates == pytest.approx({"a": 0.4, "b": 2 / 3}) and gold.overall == pytest.approx(0.5)
    priority = review_priority([0.8, 0.8, 0.8], ["a", "b", "c"], gold)
    assert priority.tolist() == pytest.approx([0.3, 0.5 * 0.2 + 0.5 * 2 / 3, 0.35])
