"""The ``sft`` policy loss (rejection-sampling fine-tuning, DPA's fine-tuning step) and the DPA loop
``rewardlab sample-pairs --direction`` → ``rewardlab dpo --loss sft`` on tiny models."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.loading import load_preferences
from rewardlab.models.formatting import choose_format
from rewardlab.models.logprobs import pair_logps
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy import get_policy_loss
from rewardlab.policy.losses import sft_loss

torch.set_num_threads(1)


def test_sft_loss_is_the_chosen_replies_per_token_nll():
    """log π(y_w|x) = −6 over 3 tokens → 6/3 = 2; −1 over 4 → 0.25. Rejected: −8/2 = −4, −3/3 = −1."""
    out = sft_loss(
        torch.tensor([-6.0, -1.0]),
        torch.tensor([3.0, 4.0]),
        rejected_logps=torch.tensor([-8.0, -3.0]),
        rejected_lengths=torch.tensor([2.0, 3.0]),
    )
    assert out.losses.tolist() == pytest.approx([2.0, 0.25])
    assert out.chosen_rewards.tolist() == pytest.approx([-2.0, -0.25])
    assert out.rejected_rewards.tolist() == pytest.approx([-4.0, -1.0])
    assert out.metrics["accuracy"].tolist() == [1.0, 1.0]


def test_sft_gradient_reaches_the_chosen_reply_only():
    """∂/∂log π(y_w|x) of −log π(y_w|x)/|y_w| is −1/|y_w| = −1/4; the rejected log-prob gets none."""
    chosen = torch.tensor([-2.0], requires_grad=True)
    rejected = torch.tensor([-1.0], requires_grad=True)
    sft_loss(chosen, torch.tensor([4.0]), rejected, torch.tensor([2.0])).losses.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.25)
    assert rejected.grad is None


def test_sft_needs_no_reference_nor_rejected_reply():
    loss = get_policy_loss("sft")
    assert not loss.needs_reference and set(loss.required) == {"chosen_logps", "chosen_lengths"}
    assert get_policy_loss("rsf") is loss
    out = loss({"chosen_logps": torch.tensor([-3.0]), "chosen_lengths": torch.tensor([3.0])})
    assert out.losses.tolist() == [1.0] and out.rejected_rewards.tolist() == [0.0]
    with pytest.raises(ValueError, match="chosen_lengths must be positive"):
        sft_loss(torch.tensor([-1.0]), torch.tensor([0.0]))


TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "snow", "maps"]


def mean_chosen_logp(policy_dir, pairs) -> float:
    """Mean over pairs of log π(y_w|x)/|y_w| under the policy saved in ``policy_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    tokens = encode_pairs(tokenizer, pairs, choose_format(tokenizer), 64, 64)
    with torch.no_grad():
        logps = pair_logps(model, tokens, tokenizer.pad_token_id or 0)
    lengths = torch.tensor([len(c) for c in tokens.chosen], dtype=torch.float32)
    return (logps.chosen_logps / lengths).mean().item()


def test_sample_pairs_with_a_direction_then_dpo_sft_raises_the_chosen_likelihood(
    tiny_decoder_dir, tiny_encoder_dir, tmp_path
):
    torch.manual_seed(0)
    reward_dir = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64, outputs=2, head="attributes")
    reward_dir = reward_dir.save_pretrained(tmp_path / "rm")
    rows = [{"prompt": f"Tell me about {t}.", "chosen": f"Sure, {t}.", "rejected": "No."} for t in TOPICS]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["sample-pairs", "--policy", str(tiny_decoder_dir), "--reward-model", str(reward_dir)]
    args += ["--data", str(tmp_path / "prefs.jsonl"), "--split", "all", "--prompts", "10", "--n", "6"]
    args += ["--accept", "4", "--max-new-tokens", "6", "--precision", "fp32", "--direction", "1,-0.5"]
    args += ["--output", str(tmp_path / "dpa.jsonl")]
    sampled = CliRunner().invoke(app, args)
    assert sampled.exit_code == 0, sampled.output
    pairs = load_preferences(tmp_path / "dpa.jsonl").pairs
    assert len(pairs) >= 10 and all(p.chosen_rating > p.rejected_rating for p in pairs)

    out = tmp_path / "sft"
    args = ["dpo", "--data", str(tmp_path / "dpa.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["--loss", "sft", "train.steps=8", "train.batch_pairs=4", "train.lr=1e-3", "num_threads=1"]
    args += ["eval.kl_prompts=0", "data.test_fraction=0.1", "data.validation_fraction=0"]
    trained = CliRunner().invoke(app, args)
    assert trained.exit_code == 0, trained.output
    report = json.loads((out / "report.json").read_text())
    assert report["loss"] == "sft" and report["steps"] == 8
    before = mean_chosen_logp(tiny_decoder_dir, pairs)
    after = mean_chosen_logp(out / "policy", pairs)
    assert math.isfinite(before) and after > before + 0.1
