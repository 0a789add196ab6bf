"""MM-DPO's Dynamic Reward Scaling against hand-computed values, the paper's property, and the CLI.

Hand example (β = 0.5, w = 1, k = ln 2), the two pairs of ``tests/test_policy_losses.py``:

    ρ_w = [1, 0], ρ_l = [-1, 1], h = [2, -1]; reward margins δ = [1, 0]
    β(δ) = 0.5·(1 + 1·(1 − 2^−δ)) = [0.5·1.5, 0.5·1] = [0.75, 0.5]
    loss = −log σ(β(δ)·h) = [ℓ(1.5), ℓ(−0.5)] = [0.2014133, 0.9740770]
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.policy import get_policy_loss
from rewardlab.policy.losses import dpo_loss, mm_dpo_loss

torch.set_num_threads(1)


def example(chosen_scores: list[float], rejected_scores: list[float]) -> dict[str, torch.Tensor]:
    return {
        "chosen_logps": torch.tensor([-1.0, -2.0]),
        "rejected_logps": torch.tensor([-3.0, -1.0]),
        "reference_chosen_logps": torch.tensor([-2.0, -2.0]),
        "reference_rejected_logps": torch.tensor([-2.0, -2.0]),
        "chosen_scores": torch.tensor(chosen_scores),
        "rejected_scores": torch.tensor(rejected_scores),
    }


def test_mm_dpo_hand_computed():
    out = mm_dpo_loss(**example([3.0, 2.0], [2.0, 2.0]), beta=0.5, scale_weight=1.0, sharpness=math.log(2))
    assert out.losses.tolist() == pytest.approx([0.2014133, 0.9740770], abs=1e-6)
    assert out.extras["beta"].tolist() == pytest.approx([0.75, 0.5])
    assert out.chosen_rewards.tolist() == pytest.approx([0.75, 0.0])


def test_without_scaling_it_is_exactly_dpo():
    batch = example([7.0, 1.0], [2.0, 5.0])
    plain = {k: v for k, v in batch.items() if not k.endswith("_scores")}
    assert torch.equal(mm_dpo_loss(**batch, beta=0.3, scale_weight=0.0).losses, dpo_loss(**plain, beta=0.3).losses)


def test_a_confident_pair_pulls_harder_up_to_the_bound():
    """The paper's claim: pairs the reward model is sure of are used more. At h = 0 the gradient of the
    loss in h is −β(δ)/2, so it grows with δ and stops at β·(1 + w); a reversed pair (δ < 0) pulls less."""
    margins = torch.tensor([-2.0, 0.0, 0.5, 2.0, 50.0])
    h = torch.zeros(5, requires_grad=True)
    out = mm_dpo_loss(
        chosen_logps=h, rejected_logps=torch.zeros(5), reference_chosen_logps=torch.zeros(5),
        reference_rejected_logps=torch.zeros(5), chosen_scores=margins, rejected_scores=torch.zeros(5),
        beta=0.1, scale_weight=0.5, sharpness=1.0,
    )  # fmt: skip
    out.losses.sum().backward()
    pull = -h.grad
    assert torch.all(pull[1:] > pull[:-1])
    assert pull[1].item() == pytest.approx(0.05)  # δ = 0: DPO's β/2
    assert pull[-1].item() == pytest.approx(0.1 * 1.5 / 2, rel=1e-6)  # the bound β(1 + w)/2


def test_a_strongly_reversed_pair_keeps_a_positive_beta():
    out = mm_dpo_loss(**example([0.0, 0.0], [100.0, 0.0]), beta=0.1, scale_weight=1.0, sharpness=1.0)
    assert out.extras["beta"][0].item() == pytest.approx(1e-3)


def test_pairs_without_ratings_are_refused_and_bad_options_named():
    with pytest.raises(ValueError, match="chosen_rating"):
        mm_dpo_loss(**example([float("nan"), 1.0], [0.0, 0.0]))
    with pytest.raises(ValueError, match="scale_weight"):
        mm_dpo_loss(**example([1.0, 1.0], [0.0, 0.0]), scale_weight=-1)
    assert get_policy_loss("dynamic_reward_scaling").name == "mm_dpo"


def test_mm_dpo_trains_from_the_cli_on_rated_pairs(tiny_decoder_dir, tmp_path):
    """Ratings in the data file are the margins; an unrated file is refused before training."""
    rows = [
        {"prompt": f"Tell me about {t}.", "chosen": f"Here is {t}.", "rejected": "No.",
         "chosen_rating": 8.0, "rejected_rating": 8.0 - (i % 4)}
        for i, t in enumerate(["bread", "the sea", "rain", "cats", "music", "tea", "stars", "trees"] * 2)
    ]  # fmt: skip
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = ["dpo", "--data", str(data), "--policy", str(tiny_decoder_dir), "--loss", "mm_dpo"]
    settings = ["train.steps=4", "train.batch_pairs=8", "train.lr=3e-3", "num_threads=1", "eval.kl_samples=0"]
    result = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "run"), *settings], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1]["loss"] < steps[0]["loss"]

    for r in rows:
        del r["rejected_rating"]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    refused = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "again"), *settings])
    assert refused.exit_code != 0 and "rejected_rating" in refused.output
    assert not (tmp_path / "again" / "metrics.jsonl").exists()
