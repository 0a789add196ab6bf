"""The thin policy trainer on the tiny decoder: DPO learns the preference, every loss trains."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.models.pair_encoding import encode_pairs, prompt_and_reply_texts
from rewardlab.policy import policy_loss_names
from rewardlab.policy.trainer import PolicyTrainConfig, train_policy

torch.set_num_threads(1)

PAIRS = [
    PreferencePair("What is the capital of France?", "The capital of France is Paris.", "I cannot help with that."),
    PreferencePair("How do I bake bread?", "Mix flour, water, salt and yeast.", "The quick brown fox."),
    PreferencePair(({"role": "user", "content": "hello there!"},), "Hi, how can I help you today?", "Numbers like 3."),
    PreferencePair("Write a poem about the sea.", "The sea and the moon at night.", "def add(a, b):"),
]


def load(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def test_chat_prompt_ends_with_the_assistant_header_and_reply_with_end_of_turn(tiny_decoder_dir):
    _, tokenizer = load(tiny_decoder_dir)
    prompt, reply = prompt_and_reply_texts("Hi", "Hello!", "chat", tokenizer)
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert reply == "Hello!<|im_end|>\n"
    assert prompt_and_reply_texts("Q:", " A.", "plain", tokenizer) == ("Q:", " A.<|im_end|>")
    tokens = encode_pairs(tokenizer, PAIRS, "chat", max_prompt_tokens=8, max_reply_tokens=5)
    assert max(map(len, tokens.prompts)) == 8 and max(map(len, tokens.chosen)) == 5
    assert tokens.prompts[0][-1] == tokenizer("\n", add_special_tokens=False)["input_ids"][-1]  # cut from the left


def test_dpo_training_starts_at_log2_and_learns_the_preference(tiny_decoder_dir):
    """With the policy equal to the reference, h = 0 and the DPO loss is log 2; training widens the margin."""
    model, tokenizer = load(tiny_decoder_dir)
    logged = []
    config = PolicyTrainConfig(loss="dpo", loss_args={"beta": 0.5}, steps=12, batch_pairs=4, lr=2e-3)
    result = train_policy(model, tokenizer, PAIRS, config, log=lambda step, values: logged.append(step))
    first, last = result.history[0], result.history[-1]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert first["logratio_data"] == pytest.approx(0.0, abs=1e-5) and first["margin"] == pytest.approx(0.0, abs=1e-5)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["accuracy"] == 1.0 and last["margin"] > 0 and last["chosen_reward"] > last["rejected_reward"]
    assert last["logratio_data"] != 0.0
    assert logged == list(range(1, 13))
    assert set(first) == {
        "loss",
        "grad_norm",
        "chosen_reward",
        "rejected_reward",
        "margin",
        "accuracy",
        "logratio_data",
    }


@pytest.mark.parametrize("name", policy_loss_names())
def test_every_loss_trains_two_steps(tiny_decoder_dir, name, tmp_path):
    model, tokenizer = load(tiny_decoder_dir)
    guide = copy.deepcopy(model)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.01)
    before = [p.detach().clone() for p in model.parameters()]
    config = PolicyTrainConfig(loss=name, steps=2, batch_pairs=3, lr=1e-3, max_row_tokens=96, cache_dir=str(tmp_path))
    rated = [dataclasses.replace(p, chosen_rating=1.0, rejected_rating=0.0) for p in PAIRS]  # P3O, BRAIn read them
    rated = [dataclasses.replace(p, annotator=f"u{i % 2}") for i, p in enumerate(rated)]  # maxmin_dpo's groups
    result = train_policy(model, tokenizer, rated, config, guide_model=guide)
    assert all(math.isfinite(v) for entry in result.history for v in entry.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_configuration_problems_are_listed_together(tiny_decoder_dir):
    model, tokenizer = load(tiny_decoder_dir)
    config = PolicyTrainConfig(loss="tgdpo", loss_args={"gamma": 1.0}, steps=0, lr=0.0)
    with pytest.raises(ValueError) as error:
        train_policy(model, tokenizer, PAIRS, config)
    message = str(error.value)
    for part in ("has no option 'gamma'", "steps must be >= 1", "lr must be > 0", "pass a guide_model"):
        assert part in message


def test_a_short_run_reads_the_reference_of_the_pairs_it_visits_only(tiny_decoder_dir, tmp_path):
    """2 steps of 3 pairs visit 6 of 12 pairs: the reference pass (and its cache) covers those 6."""
    from safetensors import safe_open

    model, tokenizer = load(tiny_decoder_dir)
    config = PolicyTrainConfig(steps=2, batch_pairs=3, lr=1e-3, cache_dir=str(tmp_path), precision="fp32")
    history = train_policy(model, tokenizer, PAIRS * 3, config).history
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6) and all(math.isfinite(h["loss"]) for h in history)
    (cached,) = tmp_path.glob("*.safetensors")
    with safe_open(cached, framework="pt") as f:
        assert f.metadata()["pairs"] == "6"
