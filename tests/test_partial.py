"""Partial fine-tuning (``model.train_layers``): exact gradients for what trains, nothing else moves
(learning a known reward this way: ``test_training.py::test_learns_a_known_linear_reward``)."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file
from synthetic import synthetic_pairs, write_jsonl

import rewardlab
from rewardlab.models.reward_model import RewardModel
from rewardlab.training.config import ConfigError, load_config
from rewardlab.training.partial import blocks, train_top_blocks


@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_trained_blocks_get_the_gradients_of_full_fine_tuning(backbone, request):
    """Freezing the lower part changes no gradient of the weights that still train, and gives none
    to the frozen ones (fp32, same batch)."""
    base = RewardModel.from_backbone(str(request.getfixturevalue(backbone)), max_length=48)
    full = base.model.float()
    partial = copy.deepcopy(full)
    trained = train_top_blocks(partial, 1)
    rows = synthetic_pairs(6, seed=2)
    batch = base.tokenizer([r["prompt"] + "\n" + r["chosen"] for r in rows], padding=True, return_tensors="pt")
    for model in (full, partial):
        model.train()
        (model(**batch).logits.float() ** 2).sum().backward()
    assert trained == sum(w.numel() for w in partial.parameters() if w.requires_grad)
    assert trained < sum(w.numel() for w in partial.parameters()) / 2
    for (name, a), b in zip(full.named_parameters(), partial.parameters(), strict=True):
        if b.requires_grad:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7, msg=name)
        else:
            assert b.grad is None, name
    assert all(w.requires_grad for w in blocks(partial)[-1].parameters())
    assert not any(w.requires_grad for w in blocks(partial)[0].parameters())
    assert not partial.get_input_embeddings().weight.requires_grad


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_the_top_block_leaves_the_rest_as_it_was(checkpointing, tiny_encoder_dir, tmp_path, recwarn):
    """Only the top block moves, with and without gradient checkpointing (turned on by its current name)."""
    data = write_jsonl(synthetic_pairs(80, seed=4), tmp_path / "pairs.jsonl")
    result = rewardlab.train(
        data=str(data),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        max_steps=4,
        precision="bf16",
        progress=False,
        **{"model.train_layers": 1, "model.gradient_checkpointing": checkpointing, "optim.lr": 1e-2},
    )
    before = load_file(tiny_encoder_dir / "model.safetensors")
    after = {k.removeprefix("bert."): v for k, v in load_file(result.model_dir / "model.safetensors").items()}
    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in before if k.startswith("encoder.layer.1.")]
    assert frozen and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in trained)
    assert not [w for w in recwarn if "gradient_checkpointing_enable" in str(w.message)]


def test_train_layers_out_of_range_is_a_config_error(tiny_encoder_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.train_layers must be positive"):
        load_config(overrides=["model.train_layers=0"])
    with pytest.raises(ConfigError, match=r"between 1 and 2 .*got 3"):
        rewardlab.train(
            backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", progress=False, **{"model.train_layers": 3}
        )
    assert not (tmp_path / "run").exists()
