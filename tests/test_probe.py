"""Linear probing before fine-tuning (LP-FT): the probe's maths and the head inputs it reads
(training from a probed head: ``test_training.py::test_learns_a_known_linear_reward``)."""

from __future__ import annotations

import pytest
import torch
from synthetic import synthetic_pairs

from rewardlab.data.records import PreferencePair
from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.training.batching import encode_pairs
from rewardlab.training.config import ConfigError, load_config
from rewardlab.training.probe import fit_linear_bt, probe_head, probe_loss


def test_probe_recovers_a_known_linear_reward_direction():
    """Pairs labelled by a Bradley-Terry model with a known w: the fitted w points the same way
    (the maximum-likelihood estimate is consistent), and the regularised loss is stationary at it."""
    gen = torch.Generator().manual_seed(0)
    w_true = torch.randn(8, generator=gen)
    diffs = torch.randn(4000, 8, generator=gen)
    prefer_first = torch.rand(4000, generator=gen) < torch.sigmoid(diffs @ w_true)
    diffs = torch.where(prefer_first[:, None], diffs, -diffs)  # chosen minus rejected
    weights = torch.ones(4000)
    w = fit_linear_bt(diffs, weights, l2=1e-6)
    assert torch.nn.functional.cosine_similarity(w, w_true, dim=0) > 0.99
    assert (w.norm() / w_true.norm() - 1).abs() < 0.1
    w64 = w.double().requires_grad_()
    loss = probe_loss(w64, diffs.double(), weights.double()) + 1e-6 * (w64 @ w64)
    (grad,) = torch.autograd.grad(loss, w64)
    assert grad.abs().max() < 1e-4


@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_head_inputs_are_what_the_head_reads(backbone, request):
    """w·φ + b from ``head_inputs=True`` equals the scores, for encoders (pooled) and decoders (last token)."""
    model = RewardModel.from_backbone(str(request.getfixturevalue(backbone)), max_length=48)
    rows = synthetic_pairs(12, seed=3)
    ids = model.encode([r["prompt"] for r in rows], [r["chosen"] for r in rows]).ids
    ids[0] = ids[0][:5]  # lengths differ, so rows are padded
    features = model.outputs_ids(ids, precision="fp32", head_inputs=True)
    head = scalar_head(model.model)
    assert features.shape == (len(ids), head.in_features)
    with torch.no_grad():
        expected = features @ head.weight[0] + (head.bias[0] if head.bias is not None else 0.0)
    torch.testing.assert_close(model.outputs_ids(ids, precision="fp32"), expected, atol=1e-5, rtol=1e-5)


def test_probe_head_fits_the_frozen_features(tiny_encoder_dir):
    """After probing, the untouched backbone with the fitted head beats the random head on held-out
    pairs from a known reward, and the head holds exactly the fitted weights."""
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    train, valid = (
        encode_pairs(model, [PreferencePair(**r) for r in synthetic_pairs(n, seed=s)]) for n, s in ((400, 1), (200, 2))
    )

    def held_out_loss() -> float:
        out = valid.outputs(model, "fp32")
        return float(torch.nn.functional.softplus(out["rejected"] - out["chosen"]).mean())

    before = held_out_loss()
    backbone = {k: v.clone() for k, v in model.model.state_dict().items() if not k.startswith("classifier")}
    result = probe_head(model, train, valid, precision="fp32")
    assert result.validation_loss == pytest.approx(held_out_loss(), abs=1e-4)
    assert held_out_loss() < before - 1e-3  # random features of a tiny untrained backbone carry a little signal
    assert result.train_loss < held_out_loss() < 0.6931
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in backbone.items())
    assert float(scalar_head(model.model).bias) == 0.0


def test_probe_needs_a_scalar_reward_head_on_pairs():
    with pytest.raises(ConfigError, match="head_init=probe"):
        load_config(None, {"model.head_init": "probe", "objective.name": "plackett_luce"})
    with pytest.raises(ConfigError, match="head_init must be auto, random or probe"):
        load_config(None, {"model.head_init": "zeros"})
