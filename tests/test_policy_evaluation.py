"""Known answers of the policy evaluation: a policy equal to its base ties everywhere."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy.evaluation import distinct_prompts, held_out_accuracy, win_rate

torch.set_num_threads(1)

PAIRS = [
    PreferencePair("What is the capital of France?", "Paris.", "I cannot help with that."),
    PreferencePair("How do I bake bread?", "Mix flour, water, salt and yeast.", "No."),
    PreferencePair("What is the capital of France?", "It is Paris.", "Rome."),
]


def test_unchanged_policy_ties_its_reference_and_its_base(tiny_decoder_dir, tiny_encoder_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    held = held_out_accuracy(model, model, tokenizer, PAIRS, "chat", 64, 32)
    # ρ_w = ρ_l = 0 for every pair: each is a tie, counted 1/2
    assert held.implicit_accuracy.accuracy == 0.5 and held.implicit_accuracy.n == 3
    assert held.mean_implicit_margin == 0.0
    assert held.ranking_accuracy == held.base_ranking_accuracy

    prompts = distinct_prompts(PAIRS, 5)
    assert prompts == ["What is the capital of France?", "How do I bake bread?"]
    lm = CausalLM(model, tokenizer, "chat", "tiny")
    judge = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    outcome = win_rate(lm, lm, judge, prompts, max_new_tokens=4)
    # greedy replies of one model to the same prompt are the same text, so the judge ties them
    assert outcome.win_rate.accuracy == 0.5 and outcome.win_rate.n == 2
    assert all(s["trained"] == s["base"] for s in outcome.samples)
