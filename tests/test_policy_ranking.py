"""Ranking accuracy and the idealised ranking accuracy of the DPO optimum (Chen et al. 2024)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit, log_softmax, logit
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.policy_ranking import (
    idealized_ranking_accuracy,
    optimal_log_ratio,
    policy_ranking,
    ranking_accuracy,
    sequence_logps,
)
from rewardlab.models.logprobs import plain_pair_logps
from rewardlab.models.pair_encoding import encode_pairs

torch.set_num_threads(1)


def test_ranking_accuracy_by_hand():
    """log π(y_w) vs log π(y_l): −1 > −2 yes, −2 > −1 no, −3 = −3 no (strict), −4 > −5 yes: 2/4."""
    assert ranking_accuracy([-1, -2, -3, -4], [-2, -1, -3, -5]) == 0.5
    with pytest.raises(ValueError, match="one policy log-probability per pair"):
        ranking_accuracy([-1, -2], [-1])
    with pytest.raises(ValueError, match="no pairs"):
        ranking_accuracy([], [])


def test_idealized_ranking_accuracy_by_hand():
    """Reference gaps log π_ref(y_w) − log π_ref(y_l) = [−1, −1, 0.5], p = ¾ so log(p/(1−p)) = log 3 ≈ 1.0986:

    - β = 2: −1 + 0.549 < 0 twice, 0.5 + 0.549 > 0: 1/3;
    - β = 1: −1 + 1.0986 = 0.0986 > 0: every pair, 1;
    - β = 1, p = [¾, ½, ½]: 0.0986 > 0, −1 < 0, 0.5 > 0: 2/3.
    """
    ref_w, ref_l = np.array([-3.0, -4.0, -2.5]), np.array([-2.0, -3.0, -3.0])
    np.testing.assert_allclose(
        optimal_log_ratio(ref_w, ref_l, 0.75, 1.0), [np.log(3) - 1, np.log(3) - 1, 0.5 + np.log(3)]
    )
    assert idealized_ranking_accuracy(ref_w, ref_l, 0.75, 2.0) == pytest.approx(1 / 3)
    assert idealized_ranking_accuracy(ref_w, ref_l, 0.75, 1.0) == 1.0
    assert idealized_ranking_accuracy(ref_w, ref_l, [0.75, 0.5, 0.5], 1.0) == pytest.approx(2 / 3)


def test_idealized_limits():
    """p = 1: the optimum puts no mass on y_l, every pair ranked right; p = ½: the reference's own ranking."""
    rng = np.random.default_rng(0)
    ref_w, ref_l = rng.normal(-20, 5, 200), rng.normal(-20, 5, 200)
    assert idealized_ranking_accuracy(ref_w, ref_l, 1.0, 0.1) == 1.0
    assert idealized_ranking_accuracy(ref_w, ref_l, 0.0, 0.1) == 0.0
    assert idealized_ranking_accuracy(ref_w, ref_l, 0.5, 0.1) == ranking_accuracy(ref_w, ref_l)
    with pytest.raises(ValueError, match="beta"):
        idealized_ranking_accuracy(ref_w, ref_l, 0.7, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        idealized_ranking_accuracy(ref_w, ref_l, 1.2, 0.1)


def test_formula_matches_the_explicit_optimum_on_a_finite_reply_set():
    """On 6 replies, π*(y) ∝ π_ref(y)·exp(r(y)/β) (Rafailov et al. 2023, eq. 4) computed outright;
    with p = σ(r(y_w) − r(y_l)), Chen et al.'s closed form gives the same log-ratio for every pair."""
    rng = np.random.default_rng(1)
    ref = log_softmax(rng.normal(0, 2, 6))
    reward = rng.normal(0, 1, 6)
    beta = 0.3
    optimum = log_softmax(ref + reward / beta)
    win, lose = np.triu_indices(6, 1)
    p = expit(reward[win] - reward[lose])
    np.testing.assert_allclose(optimal_log_ratio(ref[win], ref[lose], p, beta), optimum[win] - optimum[lose], atol=1e-9)
    assert idealized_ranking_accuracy(ref[win], ref[lose], p, beta) == ranking_accuracy(optimum[win], optimum[lose])
    assert logit(0.75) == pytest.approx(np.log(3))


PAIRS = [
    PreferencePair("What is the capital of France?", "The capital of France is Paris.", "I cannot help with that."),
    PreferencePair("How do I bake bread?", "Mix flour, water, salt and yeast.", "The quick brown fox."),
    PreferencePair("Write a poem about the sea.", "The sea and the moon at night.", "def add(a, b):"),
]


def test_policy_ranking_on_a_tiny_causal_lm(tiny_decoder_dir):
    """Summed log-probs equal the plain two-sequence computation; the policy as its own reference
    at p = ½ has an alignment gap of exactly 0, and at p = 1 an idealised accuracy of 1."""
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    chosen, rejected = sequence_logps(model, tokenizer, PAIRS)
    plain = plain_pair_logps(model, encode_pairs(tokenizer, PAIRS, "chat", 1024, 1024), tokenizer.pad_token_id)
    np.testing.assert_allclose(chosen, plain.chosen_logps.detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(rejected, plain.rejected_logps.detach().numpy(), atol=1e-4)
    assert np.all(chosen < 0) and np.all(rejected < 0)

    same = policy_ranking(model, tokenizer, PAIRS, reference=model, p=0.5, beta=0.1)
    assert same.ranking_accuracy == ranking_accuracy(chosen, rejected) and same.n == 3
    assert same.alignment_gap == 0.0 and same.idealized_ranking_accuracy == same.ranking_accuracy
    unanimous = policy_ranking(model, tokenizer, PAIRS, reference=model, p=1.0)
    assert unanimous.idealized_ranking_accuracy == 1.0
    assert policy_ranking(model, tokenizer, PAIRS).idealized_ranking_accuracy is None
