"""Pair weights in the policy trainer (the reward-model trainer's reduction), and ConvexDA in ``rewardlab dpo``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.policy.losses import dpo_loss, weighted_batch_loss
from rewardlab.policy.trainer import PolicyTrainConfig, train_policy
from rewardlab.runs.augmentation import ConvexDASettings, augment_training_pairs
from rewardlab.runs.data import SplitDataConfig, load_split

torch.set_num_threads(1)

PAIRS = [
    PreferencePair("What is the capital of France?", "The capital of France is Paris.", "I cannot help with that."),
    PreferencePair("How do I bake bread?", "Mix flour, water, salt and yeast.", "The quick brown fox."),
    PreferencePair("Write a poem about the sea.", "The sea and the moon at night.", "def add(a, b):"),
    PreferencePair("hello there!", "Hi, how can I help you today?", "Numbers like 3."),
]


def load(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def weighted(pairs: list[PreferencePair], weights: list[float]) -> list[PreferencePair]:
    return [PreferencePair(p.prompt, p.chosen, p.rejected, weight=w) for p, w in zip(pairs, weights, strict=True)]


def test_weighted_batch_loss_hand_computed():
    """losses (0.5, 2, 1), weights (1, 0.5, 0): (1·0.5 + 0.5·2 + 0·1) / 3 = 1.5 / 3 = 0.5, and the
    gradient of pair i is w_i / n: (1/3, 1/6, 0); the weight-0 pair gets none."""
    losses = torch.tensor([0.5, 2.0, 1.0], requires_grad=True)
    value = weighted_batch_loss(losses, torch.tensor([1.0, 0.5, 0.0]))
    assert value.item() == pytest.approx(0.5, abs=1e-7)
    value.backward()
    assert losses.grad.tolist() == pytest.approx([1 / 3, 1 / 6, 0.0], abs=1e-7)
    assert weighted_batch_loss(losses, torch.ones(3)).item() == pytest.approx(losses.mean().item(), abs=1e-7)
    with pytest.raises(ValueError, match="same shape"):
        weighted_batch_loss(losses, torch.ones(2))


def test_weighted_dpo_batch_hand_computed():
    """DPO with β = 1 on log-ratio gaps h = (0, ln 3): losses −ln σ(0) = ln 2 and −ln σ(ln 3) = −ln(3/4) = ln(4/3);
    weights (2, 0.5): (2·ln 2 + 0.5·ln(4/3)) / 2 = ln 2 + ln(4/3)/4 ≈ 0.693147 + 0.071921 = 0.765068."""
    zero = torch.zeros(2)
    out = dpo_loss(torch.tensor([0.0, math.log(3)]), zero, zero, zero, beta=1.0)
    value = weighted_batch_loss(out.losses, torch.tensor([2.0, 0.5]))
    assert value.item() == pytest.approx(math.log(2) + math.log(4 / 3) / 4, abs=1e-6)
    assert value.item() == pytest.approx(0.765068, abs=1e-6)


def test_the_trainer_reads_the_weights_at_the_first_step(tiny_decoder_dir):
    """At step 1 the policy is its reference, so every pair's DPO loss is ln 2 and the batch loss is
    ln 2 · Σw / n = ln 2 · (1 + 0.5 + 0 + 2) / 4 = 0.875 · ln 2 ≈ 0.606504."""
    model, tokenizer = load(tiny_decoder_dir)
    config = PolicyTrainConfig(steps=1, batch_pairs=4, lr=1e-3, precision="fp32")
    result = train_policy(model, tokenizer, weighted(PAIRS, [1.0, 0.5, 0.0, 2.0]), config)
    assert result.history[0]["loss"] == pytest.approx(0.875 * math.log(2), abs=1e-6)


def test_a_pair_of_weight_zero_has_no_effect_on_training(tiny_decoder_dir):
    """Swapping the texts of a weight-0 pair leaves every step's loss and the trained weights unchanged;
    giving it weight 1 changes them (so the comparison can fail)."""
    other = PreferencePair("Tell me a joke.", "Why did the chicken cross the road?", "No.")
    config = PolicyTrainConfig(steps=3, batch_pairs=4, lr=5e-3, precision="fp32")

    def trained(pairs: list[PreferencePair]) -> tuple[list[float], list[torch.Tensor]]:
        model, tokenizer = load(tiny_decoder_dir)
        history = train_policy(model, tokenizer, pairs, config).history
        return [h["loss"] for h in history], [p.detach().clone() for p in model.parameters()]

    base_losses, base_weights = trained(weighted(PAIRS, [1.0, 1.0, 1.0, 0.0]))
    swapped_losses, swapped_weights = trained(weighted([*PAIRS[:3], other], [1.0, 1.0, 1.0, 0.0]))
    counted_losses, counted_weights = trained(weighted([*PAIRS[:3], other], [1.0, 1.0, 1.0, 1.0]))
    assert swapped_losses == pytest.approx(base_losses, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=0) for a, b in zip(base_weights, swapped_weights, strict=True))
    assert counted_losses[-1] != pytest.approx(base_losses[-1], abs=1e-4)
    assert not all(torch.allclose(a, b, atol=1e-6, rtol=0) for a, b in zip(base_weights, counted_weights, strict=True))


def test_negative_or_nan_weights_are_a_configuration_problem(tiny_decoder_dir):
    model, tokenizer = load(tiny_decoder_dir)
    with pytest.raises(ValueError, match=r"pair weights must be finite and >= 0 \(2 are not: pairs\[1\].weight = -1.0"):
        train_policy(model, tokenizer, weighted(PAIRS, [1.0, -1.0, float("nan"), 1.0]), PolicyTrainConfig(steps=1))


TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers"]


def write_rows(path) -> None:
    """20 pairs whose texts hold words the synonym table lists (big, quick, really, help, good, bad, maybe)."""
    rows = [
        {
            "prompt": f"Can you really help me with a big question about {topic} ({i})?",
            "chosen": f"Sure, I can help. A good and quick answer about {topic}: maybe start small.",
            "rejected": "That is a bad question.",
        }
        for i, topic in enumerate(TOPICS * 2)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_dpo_with_convex_da_trains_on_the_hull_rewrites_of_its_training_pairs(
    tiny_decoder_dir, tiny_encoder_dir, tmp_path
):
    """ConvexDA augments the pairs ``dpo`` trains on (the first ``data.max_train_pairs``), as ``train``
    augments its training split; the report counts what was added."""
    data = tmp_path / "pairs.jsonl"
    write_rows(data)
    out = tmp_path / "run"
    args = ["dpo", "--data", str(data), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["train.steps=2", "train.batch_pairs=4", "train.precision=fp32", "num_threads=1", "eval.kl_prompts=0"]
    args += ["data.max_train_pairs=5", "data.convex_da=true", f"data.convex_da_encoder={tiny_encoder_dir}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())

    first = load_split(SplitDataConfig(path=str(data)), say=lambda _: None).splits.train[:5]
    expected = augment_training_pairs(first, ConvexDASettings(encoder=str(tiny_encoder_dir)), say=lambda _: None)
    added = len(expected) - 5
    assert added > 0
    assert report["data"]["convex_da"] == {"source_pairs": 5, "added": added, "encoder": str(tiny_encoder_dir)}
    assert report["data"]["train_pairs"] == 5 + added
    assert f"ConvexDA: {added} synonym rewrites" in (out / "report.md").read_text()
