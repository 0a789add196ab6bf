"""bf16 training copy: gradients reach the fp32 weights, updates reach the copy, heads stay apart."""

from __future__ import annotations

import pytest
import torch
from tiny_models import minilm_model_dir

from rewardlab.models import attention
from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.training.compute import ComputeModel

CHOSEN = [[101, 7, 8, 9, 10, 102], [101, 11, 12, 102], [101, 30, 31, 32, 33, 34, 35, 102]]
REJECTED = [[101, 7, 8, 20, 102], [101, 11, 13, 14, 15, 102], [101, 30, 40, 102]]


def loss_gradients(model: RewardModel) -> None:
    chosen, rejected, _ = model.pair_rewards(CHOSEN, REJECTED)
    (-torch.nn.functional.logsigmoid(chosen - rejected).sum()).backward()


def flat_master_grads(model: RewardModel) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.model.parameters() if p.grad is not None])


def test_bf16_copy_gradients_match_fp32():
    """On the real MiniLM (a random tiny model's reward gaps are all bf16 rounding noise)."""
    master = RewardModel.from_backbone(str(minilm_model_dir()), max_length=32)
    compute = ComputeModel(master, "fp32", torch.device("cpu"))
    assert compute.model is master
    loss_gradients(compute.model)
    reference = flat_master_grads(master)
    master.model.zero_grad(set_to_none=True)
    compute.release()

    compute = ComputeModel(master, "bf16", torch.device("cpu"))
    assert next(compute.model.model.parameters()).dtype == torch.bfloat16
    assert scalar_head(compute.model.model).weight.dtype == torch.float32
    for _ in range(2):  # two micro-batches accumulate into the fp32 gradients
        loss_gradients(compute.model)
        compute.accumulate_gradients()
    grads = flat_master_grads(master)
    assert grads.dtype == torch.float32
    assert all(p.grad is None for p in compute.model.model.parameters())
    cosine = torch.nn.functional.cosine_similarity(grads, 2 * reference, dim=0)
    assert cosine > 0.995
    assert (grads.norm() / (2 * reference.norm()) - 1).abs() < 0.02


def test_refresh_copies_updates_and_each_copy_runs_its_own_head(tiny_encoder_dir):
    master = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    compute = ComputeModel(master, "bf16", torch.device("cpu"))
    before = master.score_ids(CHOSEN, precision="fp32")
    with torch.no_grad():
        for p in master.model.parameters():
            p.add_(0.01)
    compute.refresh()
    for m, c in zip(master.model.parameters(), compute.model.model.parameters(), strict=True):
        assert torch.equal(c, m.to(c.dtype))
    after = master.score_ids(CHOSEN, precision="fp32")
    assert after != before
    copy_before = compute.model.score_ids(CHOSEN, precision="fp32")
    with torch.no_grad():
        scalar_head(compute.model.model).weight.mul_(-1)
    assert compute.model.score_ids(CHOSEN, precision="fp32") != copy_before
    assert master.score_ids(CHOSEN, precision="fp32") == after


@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_training_passes_use_matmul_attention_and_release_gives_the_master_its_own(backbone, precision, request):
    """CPU training runs attention as matmuls (a fast backward); scoring gets the fused one back."""
    master = RewardModel.from_backbone(str(request.getfixturevalue(backbone)), max_length=32)
    assert master.model.config._attn_implementation == "sdpa"
    compute = ComputeModel(master, precision, torch.device("cpu"))
    wanted = attention.NAME if master.shares_prefix else "eager"
    assert compute.model.model.config._attn_implementation == wanted
    compute.release()
    assert master.model.config._attn_implementation == "sdpa"
