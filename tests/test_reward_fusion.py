"""RewardFusion (rewardlab.rewards.fusion): known answers and the consistency property."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.evaluate.scorers import check_scorer
from rewardlab.rewards.fusion import FusedScorer, fuse_rewards, similarity_weights

RNG = np.random.default_rng(0)
MEMORY_E = RNG.normal(size=(20, 8))
MEMORY_R = RNG.normal(size=20)


def test_alpha_zero_is_the_identity():
    r = RNG.normal(size=5)
    e = RNG.normal(size=(5, 8))
    np.testing.assert_array_equal(fuse_rewards(r, e, MEMORY_R, MEMORY_E, alpha=0.0), r)


def test_alpha_one_is_the_weighted_neighbour_reward_by_hand():
    # two memory examples, cosine similarities 1 and 0 to the query; τ = 1: w = e/(e+1), 1/(e+1)
    memory_e = np.array([[1.0, 0.0], [0.0, 1.0]])
    memory_r = np.array([2.0, -1.0])
    w = np.array([np.e, 1.0]) / (np.e + 1)
    fused = fuse_rewards([10.0], [[3.0, 0.0]], memory_r, memory_e, alpha=1.0, temperature=1.0)
    np.testing.assert_allclose(fused, [w @ memory_r])
    half = fuse_rewards([10.0], [[3.0, 0.0]], memory_r, memory_e, alpha=0.5, temperature=1.0)
    np.testing.assert_allclose(half, [0.5 * 10 + 0.5 * (w @ memory_r)])


def test_weights_rows_sum_to_one_and_top_k_keeps_the_nearest():
    q = RNG.normal(size=(4, 8))
    w = similarity_weights(q, MEMORY_E, temperature=0.5, top_k=3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert ((w > 0).sum(axis=1) == 3).all()
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        MEMORY_E / np.linalg.norm(MEMORY_E, axis=1, keepdims=True)
    ).T
    for row, c in zip(w, cos, strict=True):
        assert set(np.flatnonzero(row)) == set(np.argsort(c)[-3:])


@pytest.mark.parametrize("alpha", [0.3, 0.7, 1.0])
def test_fusion_brings_near_identical_inputs_rewards_closer(alpha):
    # an inconsistent base RM: two inputs that differ by a tiny perturbation get rewards 3 apart
    e = RNG.normal(size=8)
    pair_e = np.stack([e, e + 1e-4 * RNG.normal(size=8)])
    r = np.array([1.5, -1.5])
    fused = fuse_rewards(r, pair_e, MEMORY_R, MEMORY_E, alpha=alpha, temperature=0.2)
    gap = abs(fused[0] - fused[1])
    assert gap < abs(r[0] - r[1])
    assert gap == pytest.approx((1 - alpha) * 3.0, abs=1e-3)  # the neighbours' part is (almost) shared
    # identical embeddings: exactly (1 − α)·|Δr|
    same = fuse_rewards(r, np.stack([e, e]), MEMORY_R, MEMORY_E, alpha=alpha, temperature=0.2)
    assert abs(same[0] - same[1]) == pytest.approx((1 - alpha) * 3.0, abs=1e-12)


def test_fused_scorer_wraps_a_scorer_and_an_embedder():
    vocab = ["good", "bad", "fine", "poor"]

    def embed(prompts, replies):
        return np.array([[1.0 + r.count(w) for w in vocab] for r in replies])

    class LengthScorer:
        def score(self, prompts, replies):
            return [float(len(r)) for r in replies]

    memory = ["good good", "bad", "fine", "poor poor poor"]
    scorer = FusedScorer.from_examples(LengthScorer(), embed, ["q"] * 4, memory, alpha=0.25, temperature=0.1)
    replies = ["good", "bad bad"]
    expected = fuse_rewards(
        [4.0, 7.0], embed(None, replies), [9.0, 3.0, 4.0, 14.0], embed(None, memory), alpha=0.25, temperature=0.1
    )
    np.testing.assert_allclose(scorer.score(["q", "q"], replies), expected)
    check_scorer(scorer)  # usable wherever rewardlab takes a scorer (evaluation, best-of-N)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        fuse_rewards([1.0], [[1.0, 0.0]], [1.0], [[1.0, 0.0]], alpha=1.5)
    with pytest.raises(ValueError, match="one reward per embedding"):
        fuse_rewards([1.0, 2.0], [[1.0, 0.0]], [1.0], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="zero"):
        similarity_weights([[0.0, 0.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="differ in size"):
        similarity_weights([[1.0, 0.0]], [[1.0, 0.0, 0.0]])
