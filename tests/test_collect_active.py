"""Active selection for the collect app: the informativeness maths by hand, the selectors' decisions,
the ensemble on synthetic features with a known reward, the feature cache on the tiny encoder, the
background trainer on a real SQLite store, and a quick run of benchmarks/active_vs_random.py."""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from rewardlab.collect.acquisition import draw, lure_weights, proposal
from rewardlab.collect.active import (
    ActiveSelector,
    RandomSelector,
    batch_information,
    disagreement,
    expected_information,
    flip_probability,
    item_scores,
    predictive_information,
    selector_for,
)
from rewardlab.collect.background import BackgroundTrainer, key_share, label_pairs
from rewardlab.collect.ensemble import FeatureEnsemble
from rewardlab.collect.features import FeatureCache, read_features
from rewardlab.collect.items import CollectItem
from rewardlab.collect.project import ProjectConfig, create_project
from rewardlab.models.embeddings import load_embedder

LOG2 = math.log(2)


# -- the maths -------------------------------------------------------------------------------------


def test_disagreement_and_expected_information_hand_computed():
    """Members (0.2, 0.8), (0.5, 0.5), (1, 0):
    D = variance: 0.3² = 0.09, 0, 0.5² = 0.25.
    I = H(p̄) − mean H(p_m): H(0.5) − H(0.2) = 0.693147 − (0.2·1.609438 + 0.8·0.223144) = 0.693147 − 0.500402
      = 0.192745; H(0.5) − H(0.5) = 0; H(0.5) − 0 = log 2 = 0.693147."""
    probs = np.array([[0.2, 0.5, 1.0], [0.8, 0.5, 0.0]])
    assert disagreement(probs).tolist() == pytest.approx([0.09, 0.0, 0.25], abs=1e-12)
    assert expected_information(probs).tolist() == pytest.approx([0.192745, 0.0, LOG2], abs=1e-6)


def test_bald_is_zero_when_members_agree_and_largest_for_a_zero_one_split():
    """Agreement teaches nothing however unsure the shared p is; a 0/1 split is the most (log 2, and D = 1/4)."""
    agreeing = np.array([[0.5, 0.9, 0.01]] * 4)
    assert expected_information(agreeing).tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert disagreement(agreeing).tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    split = np.array([[1.0], [0.0], [1.0], [0.0]])
    random_probs = np.random.default_rng(0).random((4, 10_000))
    assert expected_information(split)[0] == pytest.approx(LOG2)
    assert expected_information(random_probs).max() < LOG2
    assert disagreement(split)[0] == pytest.approx(0.25) and disagreement(random_probs).max() < 0.25


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="shape"):
        disagreement(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_information(np.array([[1.5]]))


def test_a_k_wise_item_scores_the_sum_over_its_pairs():
    """Item 7 has three reply pairs (D 0.09, 0, 0.25 → 0.34); item 8 one (D 0.01)."""
    probs = np.array([[0.2, 0.5, 1.0, 0.4], [0.8, 0.5, 0.0, 0.6]])
    assert item_scores(probs, [7, 7, 7, 8], "disagreement") == pytest.approx({7: 0.34, 8: 0.01})
    with pytest.raises(ValueError, match="bald"):
        item_scores(probs, [7, 7, 7, 8], "entropy")


def test_batch_information_hand_computed_and_equal_to_the_joint_gain():
    """One pair, members' logits +1 and −1: μ = 0, s = σ(0)σ(0) = 0.25, C = ((1)² + (−1)²)/(2 − 1) = 2,
    g = ½ log(1 + 0.25·2) = ½ log 1.5 = 0.202733. And the greedy gains of a batch add up to its joint
    information ½ log det(I + S^½ C_B S^½), the rank-one updates being exact Gaussian conditioning."""
    sigmoid = 1 / (1 + math.exp(-1))
    assert batch_information(np.array([[sigmoid], [1 - sigmoid]])).tolist() == pytest.approx([0.202733], abs=1e-6)
    logits = np.random.default_rng(3).normal(size=(40, 12)) * np.linspace(0.5, 3, 12) + 0.3
    probs = 1 / (1 + np.exp(-logits))
    scores = batch_information(probs, picks=5)
    batch = np.argsort(-scores)[:5]
    mean, centred = logits.mean(axis=0), (logits - logits.mean(axis=0)) / math.sqrt(39)
    s = np.sqrt(np.exp(mean) / (1 + np.exp(mean)) ** 2)[batch]
    joint = 0.5 * np.linalg.slogdet(np.eye(5) + s[:, None] * (centred.T @ centred)[np.ix_(batch, batch)] * s)[1]
    assert scores[batch].sum() == pytest.approx(joint, rel=1e-9)
    assert np.all(np.diff(scores[batch]) <= 1e-12)  # greedy gains only fall: the batch comes first, in order


def test_batch_information_skips_a_copy_of_a_pair_already_in_the_batch():
    """Pairs 0 and 1 are the same pair (identical logits, variance ≈ 4); pair 2 is independent, variance
    ≈ 2.25. BALD and disagreement score the copies highest and would ask both; after pair 0, a copy's
    variance falls to 4 / (1 + 4/4) = 2 (gain ½ log 1.5), below pair 2's ½ log(1 + 2.25/4), so the
    batch rule asks pair 2 second: the known best batch of two."""
    rng = np.random.default_rng(0)
    shared = rng.normal(size=4000) * 2.0
    logits = np.column_stack([shared, shared, rng.normal(size=4000) * 1.5])
    probs = 1 / (1 + np.exp(-logits))
    assert set(np.argsort(-expected_information(probs))[:2]) == {0, 1}
    assert set(np.argsort(-disagreement(probs))[:2]) == {0, 1}
    scores = batch_information(probs)
    assert set(np.argsort(-scores)[:2]) == {0, 2}
    assert max(scores[0], scores[1]) > scores[2] > min(scores[0], scores[1])
    assert selector_for("active", strategy="batch-information").strategy == "batch-information"


def test_epig_hand_computed():
    """Two members; pairs 0 and 1 have logits (1, −1) and (−1, 1), pair 2 (0, 0). μ = 0 everywhere, so
    s = 0.25 and 1/s = 4; C = [[2, −2, 0], [−2, 2, 0], [0, 0, 0]], C_kk + 1/s = 6, 6, 4. ρ² = 4/36 = 1/9
    between pairs 0 and 1 (either sign) and with themselves, 0 with pair 2: EPIG_0 = EPIG_1 =
    (2 · −½ log(8/9) + 0) / 3 = (2 · 0.0588915) / 3 = 0.0392610, EPIG_2 = 0."""
    sigmoid = 1 / (1 + math.exp(-1))
    probs = np.array([[sigmoid, 1 - sigmoid, 0.5], [1 - sigmoid, sigmoid, 0.5]])
    assert predictive_information(probs).tolist() == pytest.approx([0.0392610, 0.0392610, 0.0], abs=1e-7)


def test_epig_prefers_a_typical_pair_to_an_uncertain_outlier():
    """Pairs 1–50 share one uncertain direction (logit u + small noise, variance ≈ 1); pair 0 is an
    outlier, independent of them, with variance 9. BALD asks the outlier first (the largest
    uncertainty); its label says nothing about the other 50, so EPIG ranks it below every typical
    pair: by hand, EPIG_0 ≈ (1/51) · −½ log(1 − 81/13²) = 0.0064, a typical pair's ≈ (50/51) · −½
    log(1 − 1/5²) = 0.020 (s = 0.25 at μ ≈ 0)."""
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(4000, 1))
    logits = np.column_stack([3 * rng.normal(size=4000), shared + 0.1 * rng.normal(size=(4000, 50))])
    probs = 1 / (1 + np.exp(-logits))
    assert int(np.argmax(expected_information(probs))) == 0
    scores = predictive_information(probs)
    assert scores[0] == pytest.approx(0.0064, abs=0.002) and scores[1:].min() > scores[0]
    assert scores[1:].mean() == pytest.approx(0.020, abs=0.003)


def test_flip_hand_computed():
    """Members' logits (1, −1): μ = 0, F = Φ(0) = ½. Logits (1, 3): μ = 2, σ = √((1 + 1)/1) = √2,
    F = Φ(−2/√2) = Φ(−1.414214) = 0.0786496. Logits (2, 2): σ = 0, the members agree exactly: 0."""
    logits = np.array([[1.0, 1.0, 2.0], [-1.0, 3.0, 2.0]])
    scores = flip_probability(1 / (1 + np.exp(-logits)))
    assert scores.tolist() == pytest.approx([0.5, 0.0786496, 0.0], abs=1e-6)
    assert selector_for("active", strategy="flip").strategy == "flip"


def test_flip_is_blind_to_a_pairs_scale_where_bald_chases_it():
    """The known case of issue 30: a linear reward's logits on c·d are c times those on d, so a pair
    whose replies differ five times as much looks five times as uncertain. Pool: 200 pairs, the first
    20 copies of others scaled by 5 (outliers). On a Laplace ensemble fitted to 30 labels, BALD's top 20
    are mostly outliers; F of each outlier equals F of the pair it copies (to rounding), so flip's top
    20 hold outliers only as copies of pairs it ranks high anyway."""
    rng = np.random.default_rng(0)
    true_w = rng.normal(size=8)
    base = rng.normal(size=(180, 8)) * 0.3
    pool = np.concatenate([5 * base[:20], base])
    diffs, labels = synthetic(30, 1, true_w)
    ensemble = FeatureEnsemble(members=64, l2=1.0, seed=0, posterior="laplace").fit(diffs, labels)
    probs = ensemble.predict(pool)
    assert np.mean(np.argsort(-expected_information(probs))[:20] < 20) > 0.5
    flip = flip_probability(probs)
    assert flip[:20] == pytest.approx(flip[20:40], abs=1e-9)
    assert not np.allclose(expected_information(probs)[:20], expected_information(probs)[20:40], rtol=0.1)


# -- stochastic acquisition and its weights --------------------------------------------------------


def test_lure_weights_hand_computed():
    """N = 4, M = 2: q_1 = 0.5 → v_1 = 1 + (2/3)(1/(4·0.5) − 1) = 1 − 1/3 = 0.666667; q_2 = 0.1 →
    v_2 = 1 + (2/2)(1/(3·0.1) − 1) = 3.333333. Uniform draws (q = 1/4, 1/3) weigh 1; with M = N every
    weight is 1; with M = 1, v = 1/(N q) = 1/(4·0.5) = 0.5."""
    assert lure_weights([0.5, 0.1], 4).tolist() == pytest.approx([2 / 3, 10 / 3])
    assert lure_weights([1 / 4, 1 / 3], 4).tolist() == pytest.approx([1.0, 1.0])
    assert lure_weights([0.9, 0.2, 0.5, 1.0], 4).tolist() == pytest.approx([1.0] * 4)
    assert lure_weights([0.5], 4).tolist() == pytest.approx([0.5])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        lure_weights([0.0], 4)


def test_lure_is_unbiased_for_the_pool_loss_exactly():
    """The paper's claim, checked by enumerating every ordered draw of M of N = 6 pairs (q ∝ s over the
    pairs left): E[(1/M) Σ v_m L_m] = (1/6) Σ L = 1.1 for every M, where the plain mean of the drawn
    losses is pulled towards the high-score pairs."""
    losses, scores = np.array([0.1, 2.0, 0.5, 3.0, 0.0, 1.0]), np.array([1, 5, 2, 8, 0.5, 3.0])
    for m in (1, 2, 4, 6):
        lure = plain = 0.0
        for order in itertools.permutations(range(6), m):
            left, chance, q = list(range(6)), 1.0, []
            for i in order:
                q.append(scores[i] / scores[left].sum())
                chance *= q[-1]
                left.remove(i)
            lure += chance * float(np.mean(lure_weights(q, 6) * losses[list(order)]))
            plain += chance * float(np.mean(losses[list(order)]))
        assert lure == pytest.approx(1.1, abs=1e-12)
        assert m == 6 or plain > 1.3


def test_draws_follow_the_power_of_the_scores_and_report_their_probability():
    """q ∝ s^β: scores (1, 2, 7) with β = 1 give 0.1, 0.2, 0.7; β = 0 is uniform; a floor of 0.3 mixes in
    0.1 each. A draw of all three reports its first pick's q and 1 for the last (nothing else left)."""
    assert proposal(np.array([1.0, 2.0, 7.0])).tolist() == pytest.approx([0.1, 0.2, 0.7])
    assert proposal(np.array([1.0, 2.0, 7.0]), power=0).tolist() == pytest.approx([1 / 3] * 3)
    assert proposal(np.array([1.0, 2.0, 7.0]), floor=0.3).tolist() == pytest.approx([0.17, 0.24, 0.59])
    rng = np.random.default_rng(0)
    firsts = np.array([draw(np.array([1.0, 2.0, 7.0]), 1, rng)[0][0] for _ in range(20_000)])
    assert np.bincount(firsts, minlength=3) / 20_000 == pytest.approx([0.1, 0.2, 0.7], abs=0.01)
    picks, q = draw(np.array([1.0, 2.0, 7.0]), 3, rng)
    assert q[0] == pytest.approx([0.1, 0.2, 0.7][picks[0]]) and q[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-negative"):
        proposal(np.array([1.0, -1.0]))


def test_weighted_fit_on_biased_draws_targets_the_pool():
    """Misspecified on purpose, so that which pairs are labelled changes the fit: 500 pairs with d = 1
    and P(a ≻ b) = 0.9, 500 with d = 3 and P = 0.6; no single σ(w d) fits both, and the fit on the whole
    pool is w ≈ 0.297. Drawn ∝ d² (BALD's ‖d‖², 9 to 1 for the far pairs), 200 labels fit plainly give a
    w near the far pairs' (0.157 on these seeds); weighted by R_LURE they give the pool's (0.289)."""
    diffs = np.array([1.0] * 500 + [3.0] * 500)[:, None]
    targets = np.array([0.9] * 500 + [0.6] * 500)

    def fitted(rows: np.ndarray, weights: np.ndarray | None = None) -> float:
        ensemble = FeatureEnsemble(members=400, l2=1e-3, posterior="laplace").fit(diffs[rows], targets[rows], weights)
        return float(ensemble.weights.mean())

    pool = fitted(np.arange(1000))
    rng = np.random.default_rng(0)
    plain, weighted = [], []
    for _ in range(10):
        open_rows, rows, q = np.arange(1000), [], []
        for _ in range(10):
            order, chances = draw(diffs[open_rows, 0] ** 2, 20, rng)
            rows += list(open_rows[order])
            q += chances.tolist()
            open_rows = np.setdiff1d(open_rows, open_rows[order])
        plain.append(fitted(np.array(rows)))
        weighted.append(fitted(np.array(rows), lure_weights(q, 1000)))
    assert pool == pytest.approx(0.297, abs=0.01)
    assert abs(np.mean(weighted) - pool) < 0.03 < 0.1 < abs(np.mean(plain) - pool)


def test_weights_act_as_copies_of_a_pair():
    """Weight 2 on every pair is each pair twice (the Laplace posterior is the same, draws and all);
    weight 0 drops a pair; the bootstrap ensemble with every weight 1 is the unweighted one."""
    diffs, labels = synthetic(40, 3, np.array([1.0, -2.0, 0.5]))
    twice = FeatureEnsemble(members=8, l2=1.0, seed=1, posterior="laplace").fit(diffs, labels, np.full(40, 2.0))
    copies = FeatureEnsemble(members=8, l2=1.0, seed=1, posterior="laplace").fit(
        np.concatenate([diffs, diffs]), np.concatenate([labels, labels])
    )
    assert twice.weights == pytest.approx(copies.weights, abs=1e-5)
    dropped = FeatureEnsemble(members=8, l2=1.0, seed=1, posterior="laplace").fit(
        diffs, labels, np.r_[np.ones(30), np.zeros(10)]
    )
    first = FeatureEnsemble(members=8, l2=1.0, seed=1, posterior="laplace").fit(diffs[:30], labels[:30])
    assert dropped.weights == pytest.approx(first.weights, abs=1e-5)
    ones = FeatureEnsemble(members=3, seed=2).fit(diffs, labels, np.ones(40))
    assert np.array_equal(ones.weights, FeatureEnsemble(members=3, seed=2).fit(diffs, labels).weights)
    with pytest.raises(ValueError, match="weights"):
        FeatureEnsemble().fit(diffs, labels, -np.ones(40))


# -- selectors -------------------------------------------------------------------------------------


def test_active_selector_picks_the_best_scored_and_breaks_ties_at_random():
    selector = ActiveSelector(random_share=0.0)
    selector.update({1: 0.1, 2: 0.5, 3: 0.5, 4: 0.2})
    rng = random.Random(0)
    picks = [selector.pick([1, 2, 3, 4], rng) for _ in range(200)]
    assert {item for item, _ in picks} == {2, 3} and {how for _, how in picks} == {"active"}
    assert selector.pick([1, 4], rng) == (4, "active")


def test_an_item_without_a_score_counts_as_most_informative():
    selector = ActiveSelector(random_share=0.0)
    selector.update({1: 5.0, 2: 9.0})
    assert selector.pick([1, 2, 3], random.Random(0)) == (3, "active")


def test_before_any_scores_picks_are_uniform_but_still_trained_on():
    selector = ActiveSelector(random_share=0.0)
    picks = [selector.pick([1, 2, 3], random.Random(seed)) for seed in range(60)]
    assert {item for item, _ in picks} == {1, 2, 3} and {how for _, how in picks} == {"active"}


def test_the_random_share_is_marked_random_and_uniform():
    selector = ActiveSelector(random_share=0.25)
    selector.update({1: 1.0, 2: 0.0, 3: 0.0})
    rng = random.Random(1)
    picks = [selector.pick([1, 2, 3], rng) for _ in range(4000)]
    randoms = [item for item, how in picks if how == "random"]
    assert len(randoms) / len(picks) == pytest.approx(0.25, abs=0.03)
    assert all(abs(randoms.count(i) / len(randoms) - 1 / 3) < 0.05 for i in (1, 2, 3))
    assert {item for item, how in picks if how == "active"} == {1}


def test_random_selector_and_factory():
    assert RandomSelector().pick([5], random.Random(0)) == (5, "random")
    assert isinstance(selector_for("random"), RandomSelector)
    assert selector_for("active", 0.3, "bald").strategy == "bald"
    with pytest.raises(ValueError, match="random_share"):
        ActiveSelector(random_share=1.5)
    with pytest.raises(ValueError, match="disagreement, bald"):
        ActiveSelector(strategy="margin")
    with pytest.raises(ValueError, match="no candidate"):
        ActiveSelector().pick([], random.Random(0))


def test_update_swaps_the_table_whole():
    """The selector keeps its own copy: changing the dict passed in later changes nothing."""
    scores = {1: 1.0, 2: 2.0}
    selector = ActiveSelector(random_share=0.0)
    selector.update(scores)
    scores[1] = 10.0
    assert selector.pick([1, 2], random.Random(0)) == (2, "active")


# -- the ensemble on a known reward ----------------------------------------------------------------


def synthetic(n: int, seed: int, true_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of random feature vectors labelled by Bradley-Terry with the true reward w·φ (noisy labels)."""
    rng = np.random.default_rng(seed)
    diffs = rng.normal(size=(n, len(true_w)))
    labels = (rng.random(n) < 1 / (1 + np.exp(-diffs @ true_w))).astype(float)
    return diffs, labels


def test_the_ensemble_mean_recovers_a_known_reward_ranking():
    true_w = np.array([2.0, -1.0, 0.5, 0.0, 1.5, -0.5])
    diffs, labels = synthetic(600, 0, true_w)
    ensemble = FeatureEnsemble(members=5, l2=1.0, seed=0).fit(diffs, labels)
    replies = np.random.default_rng(1).normal(size=(50, len(true_w)))
    rho = spearmanr(ensemble.rewards(replies).mean(axis=0), replies @ true_w).statistic
    assert rho > 0.95
    assert ensemble.predict(diffs).shape == (5, 600)


def test_member_disagreement_falls_as_labels_grow():
    true_w = np.array([1.0, -1.0, 0.5, 2.0])
    probe = np.random.default_rng(9).normal(size=(500, 4))
    spread = []
    for n in (30, 300, 3000):
        diffs, labels = synthetic(n, n, true_w)
        ensemble = FeatureEnsemble(members=8, l2=0.1, seed=0).fit(diffs, labels)
        spread.append(float(disagreement(ensemble.predict(probe)).mean()))
    assert spread[0] > spread[1] > spread[2]
    assert spread[2] < spread[0] / 10


def test_soft_targets_and_ties():
    """A tie (target ½) on its own pulls the reward difference to 0; strength 0.875 gives a gap between."""
    diffs = np.array([[1.0, 0.0]] * 20)
    tie = FeatureEnsemble(members=2, l2=0.01).fit(diffs, np.full(20, 0.5)).predict(diffs[:1])
    assert tie == pytest.approx(0.5, abs=1e-4)
    graded = FeatureEnsemble(members=2, l2=0.01).fit(diffs, np.full(20, 0.875)).predict(diffs[:1])
    assert graded == pytest.approx(0.875, abs=0.01)
    with pytest.raises(ValueError, match="targets"):
        FeatureEnsemble().fit(diffs, np.full(20, 2.0))
    with pytest.raises(ValueError, match="not fitted"):
        FeatureEnsemble().predict(diffs)


def test_laplace_members_have_the_posterior_covariance_known_by_hand():
    """1-D, λ = 1. Pairs with d = 0 carry no information: w* = 0, H = 2λ = 2, so the members are draws
    of N(0, ½). Ten ties on d = 1: w* = 0 by symmetry, H = 10·σ(0)σ(0) + 2 = 10·0.25 + 2 = 4.5, var
    1/4.5 = 0.2222. Sample variance of 20,000 draws: standard error ≈ var·√(2/20000) = 1 % of it."""
    blank = FeatureEnsemble(members=20_000, l2=1.0, posterior="laplace").fit(np.zeros((10, 1)), np.ones(10))
    assert blank.weights.mean() == pytest.approx(0.0, abs=0.02)
    assert blank.weights.var() == pytest.approx(0.5, rel=0.05)
    ties = FeatureEnsemble(members=20_000, l2=1.0, posterior="laplace").fit(np.ones((10, 1)), np.full(10, 0.5))
    assert ties.weights.var() == pytest.approx(1 / 4.5, rel=0.05)
    with pytest.raises(ValueError, match="posterior"):
        FeatureEnsemble(posterior="dropout")


def test_laplace_members_recover_a_known_reward_and_shrink_with_labels():
    """The paper's claim for the Laplace posterior: centred on the MAP reward, with a spread that falls
    as labels grow (H grows about linearly in n, so the variance falls about as 1/n)."""
    true_w = np.array([2.0, -1.0, 0.5, 0.0, 1.5, -0.5])
    probe = np.random.default_rng(1).normal(size=(200, len(true_w)))
    spread = []
    for n in (30, 300, 3000):
        diffs, labels = synthetic(n, n, true_w)
        ensemble = FeatureEnsemble(members=64, l2=1.0, seed=0, posterior="laplace").fit(diffs, labels)
        spread.append(float(disagreement(ensemble.predict(probe)).mean()))
    assert spread[0] > spread[1] > spread[2] and spread[2] < spread[0] / 10
    rho = spearmanr(ensemble.rewards(probe).mean(axis=0), probe @ true_w).statistic
    assert rho > 0.98


# -- labels to pairs -------------------------------------------------------------------------------


def test_label_pairs_for_each_kind():
    assert label_pairs("pairwise", {"choice": "b", "strength": 3}, 2) == [(0, 1, 0.0)]
    assert label_pairs("pairwise", {"choice": "a", "strength": 1}, 2) == [(0, 1, 0.75)]
    assert label_pairs("pairwise", {"choice": "tie"}, 2) == [(0, 1, 0.5)]
    assert label_pairs("ranking", {"order": [2, 0, 1]}, 3) == [(2, 0, 1.0), (2, 1, 1.0), (0, 1, 1.0)]
    assert label_pairs("rating", {"ratings": [3, 5, 3]}, 3) == [(0, 1, 0.0), (0, 2, 0.5), (1, 2, 1.0)]
    payload = {"ratings": {"help": [7, 1], "harm": [1, 5]}}  # means 4 and 3
    assert label_pairs("attributes", payload, 2, ["help", "harm"]) == [(0, 1, 1.0)]


# -- features on the tiny encoder ------------------------------------------------------------------


def test_features_are_the_sentence_embeddings_and_are_cached(tmp_path, tiny_encoder_dir):
    items = [CollectItem("Say hi.", ("hi", "go away"), key="a"), CollectItem("2+2?", ("4", "5", "22"), key="b")]
    path = tmp_path / "features.safetensors"
    features = FeatureCache(path, str(tiny_encoder_dir)).features(items)
    expected = load_embedder(str(tiny_encoder_dir))(["2+2?"] * 3, ["4", "5", "22"])
    assert features["b"].shape == (3, 32) and np.allclose(features["b"], expected, atol=1e-5)
    assert set(read_features(path, str(tiny_encoder_dir))) == {"a", "b"}
    again = FeatureCache(path, str(tiny_encoder_dir))
    assert np.array_equal(again.features(items[:1])["a"], features["a"]) and again._embedder is None
    assert read_features(path, "another-encoder") == {}  # another encoder's features are not reused
    longer = FeatureCache(path, str(tiny_encoder_dir), max_length=3).features(items[:1])["a"]  # nor another length
    expected_short = load_embedder(str(tiny_encoder_dir), max_length=3)(["Say hi."] * 2, ["hi", "go away"])
    assert np.allclose(longer, expected_short, atol=1e-5) and not np.allclose(longer, features["a"], atol=1e-3)
    assert set(read_features(path, f"{tiny_encoder_dir}@3")) == {"a"}
    path.write_bytes(b"damaged")
    assert read_features(path, str(tiny_encoder_dir)) == {}


# -- the background trainer ------------------------------------------------------------------------


def make_project(path: Path, encoder: Path, selection: str = "active", n_items: int = 40):
    config = ProjectConfig(selection=selection, retrain_every=5, members=3, encoder=str(encoder), random_share=0.25)
    project, store, _ = create_project(path, config)
    store.add_items(
        [
            CollectItem(f"Question {i}?", (f"good answer {i}", f"bad {i} nonsense xyz"), key=f"k{i}")
            for i in range(n_items)
        ]
    )
    return project, store


def label(store, annotator: str, item_ids, selection: str, payload: dict | None = None) -> None:
    who = store.annotator_for_token(annotator)
    for item_id in item_ids:
        store.record_label(
            annotator_id=who.id,
            item_id=item_id,
            submission_id=f"{who.id}-{item_id}",
            payload=payload or {"choice": "a", "strength": 3},
            skipped=False,
            reason="",
            shown_at=0.0,
            selection=selection,
        )


def test_retraining_scores_open_items_and_holds_out_the_random_labels(tmp_path, tiny_encoder_dir):
    project, store = make_project(tmp_path / "p", tiny_encoder_dir)
    token = store.add_annotator("alice")
    ids = [item.id for item in store.items()]
    label(store, token, ids[:12], "active")
    label(store, token, ids[12:16], "random")
    selector = ActiveSelector(random_share=0.25)
    trainer = BackgroundTrainer(project, store, selector)
    result = trainer.maybe_retrain()
    assert result is not None and result.n_labels == 12  # the 4 random labels are not trained on
    assert result.heldout_n == 4 and result.heldout_accuracy is not None
    assert set(selector.scores) == set(ids[16:])  # only items still needing a label are scored
    assert store.metrics()[-1]["n_labels"] == 12 and store.metrics()[-1]["heldout_n"] == 4
    assert project.features_path.is_file()
    assert trainer.maybe_retrain() is None  # fewer than retrain_every new labels
    label(store, token, ids[16:21], "active")
    assert trainer.maybe_retrain().n_labels == 17


def test_random_order_holds_out_items_by_key_hash(tmp_path, tiny_encoder_dir):
    project, store = make_project(tmp_path / "p", tiny_encoder_dir, selection="random")
    token = store.add_annotator("alice")
    items = store.items()
    label(store, token, [item.id for item in items], "random")
    held = sum(key_share(item.key) < 0.25 for item in items)
    result = BackgroundTrainer(project, store, RandomSelector()).maybe_retrain()
    assert 0 < held < len(items) and result.heldout_n == held and result.n_labels == len(items) - held


def test_the_thread_retrains_on_notify_and_survives_a_failure(tmp_path, tiny_encoder_dir, caplog):
    project, store = make_project(tmp_path / "p", tiny_encoder_dir)
    token = store.add_annotator("alice")
    ids = [item.id for item in store.items()]
    selector = ActiveSelector()
    trainer = BackgroundTrainer(project, store, selector)
    trainer.start()
    try:
        label(store, token, ids[:8], "active")
        started = time.monotonic()
        trainer.notify()
        assert time.monotonic() - started < 0.05  # notify only wakes the thread
        while not store.metrics() and time.monotonic() - started < 30:
            time.sleep(0.05)
        assert store.metrics() and selector.scores
        with caplog.at_level(logging.ERROR, logger="rewardlab.collect.background"):
            label(store, token, ids[8:14], "active", {"choice": "a", "strength": 9})  # no such strength: the fit fails
            trainer.notify()
            while not caplog.records and time.monotonic() - started < 30:
                time.sleep(0.05)
        assert "retraining" in caplog.text and trainer._thread.is_alive()
    finally:
        trainer.stop()
    assert trainer._thread is None


# -- the benchmark, tiny ---------------------------------------------------------------------------


def test_the_benchmark_runs_end_to_end_on_the_tiny_encoder(tmp_path, tiny_encoder_dir, monkeypatch):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "active_vs_random.py"
    spec = importlib.util.spec_from_file_location("active_vs_random", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    work = tmp_path / "work"
    argv = ["--work", str(work), "--encoder", str(tiny_encoder_dir), "--limit", "60", "--seeds", "2"]
    summary = module.main([*argv, "--max-labels", "60", "--target", "40", "--members", "2", "--goal-saving", "0.5"])
    assert summary["counts"] == [20, 40, 60]
    for name in ("disagreement", "bald"):  # active(20) − random(40), seed by seed: the goal's own test
        goal = summary["paired"][name]["goal"]
        differences = np.array(summary["curves"][name])[:, 0] - np.array(summary["curves"]["random"])[:, 1]
        assert summary["goal_labels"] == 20 and goal["mean"] == pytest.approx(differences.mean())
        assert goal["low"] <= goal["mean"] <= goal["high"] and goal["ahead"] == int((differences > 0).sum())
    for name in ("disagreement", "bald", "random"):
        curves = summary["curves"][name]
        assert len(curves) == 2 and all(0 <= a <= 1 for curve in curves for a in curve)
        means = summary["strategies"][name]["mean"]
        assert means == pytest.approx(np.mean(curves, axis=0).tolist())
    assert summary["curves"]["random"][0][0] == summary["curves"]["bald"][0][0]  # same first labels
    saved = json.loads((work / "active_vs_random.json").read_text())
    assert saved["random_at_target"]["labels"] == 40
    assert "| labels |" in (work / "active_vs_random.md").read_text()
    # reaching random's accuracy means staying there: a single round above it (60) does not count
    assert module.labels_to_stay_above([20, 40, 60, 80, 100], [0.5, 0.6, 0.7, 0.5, 0.7], 0.6) == 100
    assert module.labels_to_stay_above([20, 40, 60], [0.6, 0.7, 0.5], 0.6) is None
    # the batch rule on the Laplace posterior, on seeds 5–6: random's curve is the bootstrap learner's, as before
    argv = [*argv, "--max-labels", "60", "--target", "40", "--members", "2", "--first-seed", "5"]
    laplace = ["--selection-posterior", "laplace", "--selection-members", "16"]
    other = module.main([*argv, "--strategies", "batch-information,random", *laplace])
    assert len(other["curves"]["batch-information"]) == 2
    again = module.main(argv)
    assert again["curves"]["random"] == other["curves"]["random"]
    # stochastic acquisition with R_LURE weights, and the scale-free rule: random's curve is untouched
    lure = ["--acquisition", "power", "--power", "2", "--floor", "0.1", "--importance-weights"]
    weighted = module.main([*argv, "--strategies", "flip,bald,random", *lure])
    assert weighted["curves"]["random"] == again["curves"]["random"] and len(weighted["curves"]["flip"]) == 2
    with pytest.raises(SystemExit):
        module.parse_args(["--work", str(work), "--importance-weights"])
