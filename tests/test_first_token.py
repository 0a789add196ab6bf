"""The last encoder layer at the first token only: the same rewards and gradients as the whole layer."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardlab.models.first_token import FirstTokenLayer, compute_first_token_only
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import pad_batch


def ragged_batch(n: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = random.Random(seed)
    rows = [[101] + [rng.randrange(1000, vocab) for _ in range(rng.randint(2, 40))] + [102] for _ in range(n)]
    return pad_batch(rows, pad_id=0)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_rewards_and_gradients_equal_the_whole_last_layer(attention, tiny_encoder_dir):
    torch.manual_seed(0)
    whole = AutoModelForSequenceClassification.from_pretrained(
        tiny_encoder_dir, num_labels=1, attn_implementation=attention
    )
    first = copy.deepcopy(whole)
    assert compute_first_token_only(first)
    assert isinstance(first.bert.encoder.layer[-1], FirstTokenLayer)
    assert first.state_dict().keys() == whole.state_dict().keys()
    input_ids, mask = ragged_batch(7, whole.config.vocab_size, seed=3)
    assert not mask.all(), "the batch must hold padding for the test to cover the mask"

    rewards = {}
    for name, model in (("whole", whole), ("first", first)):
        out = model(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1)
        (out * torch.arange(1.0, 8.0)).sum().backward()
        rewards[name] = out.detach()

    assert rewards["first"].tolist() == pytest.approx(rewards["whole"].tolist(), abs=1e-5)
    assert len(set(rewards["whole"].tolist())) == 7, "rewards must differ between rows for the test to mean anything"
    for (name, w), f in zip(whole.named_parameters(), first.parameters(), strict=True):
        if w.grad is None:  # the MLM-free backbone has no unused weights, but stay general
            assert f.grad is None, name
            continue
        assert torch.allclose(w.grad, f.grad, atol=1e-5), name
    top = dict(whole.named_parameters())["bert.encoder.layer.1.output.dense.weight"]
    assert top.grad.abs().sum() > 0, "the last layer's weights must receive gradients"


def test_reward_models_compute_first_token_only_and_save_the_same_weights(tiny_encoder_dir, tmp_path):
    model = RewardModel.from_backbone(str(tiny_encoder_dir))
    assert isinstance(model.model.bert.encoder.layer[-1], FirstTokenLayer)
    prompts, replies = ["Is the sea salty?", "Name a colour."], ["Yes, it is.", "Blue, and also a very long green."]
    scores = model.score(prompts, replies, precision="fp32")
    saved = RewardModel.from_pretrained(model.save_pretrained(tmp_path / "rm"))
    assert isinstance(saved.model.bert.encoder.layer[-1], FirstTokenLayer)
    assert saved.score(prompts, replies, precision="fp32") == scores
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    encoded = model.encode(prompts, replies).ids
    input_ids, mask = pad_batch(encoded, pad_id=0)
    plain_scores = plain(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1).tolist()
    assert plain_scores == pytest.approx(scores, abs=1e-5)


def test_decoders_are_left_as_they_are(tiny_decoder_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_decoder_dir, num_labels=1)
    layers = list(model.modules())
    assert not compute_first_token_only(model)
    assert list(model.modules()) == layers
