"""DAA over-optimisation (Rafailov et al. 2024): the fitted form, KL 0 at step 0, the command end to end."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy.daa_overopt import DAAOveroptConfig, Variant, measure_checkpoint, parse_variants
from rewardlab.policy.daa_overopt_fit import fit_gold_form, gold_form

torch.set_num_threads(1)

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers", "snow", "bikes"]


def test_the_form_at_hand_computed_points():
    """R(d) = d(α − β log d) with α = 1, β = 0.5: R(1) = 1·(1 − 0) = 1, R(e) = e·(1 − 0.5) = e/2, R(0) = 0."""
    values = gold_form(np.array([0.0, 1.0, math.e]), 1.0, 0.5)
    assert values.tolist() == pytest.approx([0.0, 1.0, math.e / 2])


def test_the_fit_recovers_alpha_and_beta_and_the_peak():
    """Noise-free points of α = 0.8, β = 0.5 give them back; the peak is d* = exp(α/β − 1) = exp(0.6)
    = 1.8221, where R = β·d* = 0.9111 (dR/dd = α − β log d − β = 0.8 − 0.5·0.6 − 0.5 = 0)."""
    d = np.array([0.0, 0.3, 0.7, 1.2, 1.8, 2.5, 3.3])
    fit = fit_gold_form(d, gold_form(d, 0.8, 0.5))
    assert fit is not None
    assert fit.alpha == pytest.approx(0.8, abs=1e-9) and fit.beta == pytest.approx(0.5, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.peak_d == pytest.approx(math.exp(0.6)) and fit.peak_gain == pytest.approx(0.5 * math.exp(0.6))
    assert fit.points == 7


def test_the_fit_recovers_the_form_under_noise():
    """Gao et al.'s claim is the shape: on a noisy over-optimised curve (σ = 0.02) the fit still finds a
    peak near the true one, and β > 0 (the gold reward falls past it)."""
    rng = np.random.default_rng(0)
    d = np.linspace(0.1, 4.0, 40)
    gains = gold_form(d, 1.0, 0.6) + rng.normal(0, 0.02, d.size)
    fit = fit_gold_form(d, gains)
    assert fit is not None and fit.beta > 0
    assert fit.alpha == pytest.approx(1.0, abs=0.05) and fit.beta == pytest.approx(0.6, abs=0.05)
    assert fit.peak_d == pytest.approx(math.exp(1 / 0.6 - 1), rel=0.15)


def test_a_curve_that_never_left_the_start_has_no_fit():
    assert fit_gold_form([0.0, 0.0, 0.5], [0.0, 0.1, 0.2]) is None
    with pytest.raises(ValueError, match="same length"):
        fit_gold_form([0.0, 1.0], [0.0])


def test_variants_are_every_loss_and_beta():
    variants = parse_variants(["dpo", "slic", "dpo+ra"], [0.1, 0.5])
    assert [v.name for v in variants] == [
        "dpo β=0.1", "dpo β=0.5", "slic β=0.1", "slic β=0.5", "dpo+ra β=0.1", "dpo+ra β=0.5",
    ]  # fmt: skip
    assert variants[-1] == Variant("dpo", 0.5, reward_augmented=True)


def test_bad_settings_are_all_named(tmp_path):
    config = DAAOveroptConfig(gold=str(tmp_path / "none"), losses=["dpo", "nope", "simpo"], betas=[0.1, -1.0])
    config.eval_every = 0
    problems = "\n".join(config.problems())
    for text in ("--gold", "nope", "β must be > 0", "--eval-every"):
        assert text in problems, text


@pytest.fixture(scope="module")
def gold_dir(tiny_encoder_dir, tmp_path_factory):
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(
        tmp_path_factory.mktemp("gold") / "gold"
    )


def test_kl_at_step_0_is_exactly_zero(tiny_decoder_dir, gold_dir):
    """Step 0: the policy is its reference, so every sampled reply's log-ratio is 0, whatever the
    replies; a perturbed policy's is not."""
    policy = CausalLM.from_pretrained(tiny_decoder_dir)
    reference = CausalLM(copy.deepcopy(policy.model), policy.tokenizer, policy.text_format)
    gold = RewardModel.from_pretrained(gold_dir)
    prompts = ["Tell me about bread.", "What is rain?"]
    config = DAAOveroptConfig(gold=str(gold_dir), samples=3, max_new_tokens=6, gold_precision="fp32")
    point = measure_checkpoint(policy, reference, gold, prompts, prompts, config, step=0)
    assert point.kl == 0.0 and point.kl_se == 0.0 and point.sqrt_kl == 0.0
    assert point.replies == 6 and math.isfinite(point.gold)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    moved = measure_checkpoint(policy, reference, gold, prompts, prompts, config, step=1)
    assert moved.kl > 0


def write_rated_pairs(path) -> None:
    """48 pairs, a polite answer over a refusal, with UltraFeedback-style ratings under metadata."""
    rows = [
        {
            "prompt": f"Tell me about {topic}, please ({i}).",
            "chosen": f"Sure! Here is something about {topic}.",
            "rejected": "No.",
            "metadata": {"score_chosen": 8 + i % 2, "score_rejected": 2 + i % 3},
        }
        for i, topic in enumerate(TOPICS * 4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def run(args: list[str]):
    return CliRunner().invoke(app, ["daa-overopt", *args])


def common(policy, gold, data, out) -> list[str]:
    return [
        "--policy", str(policy), "--gold", str(gold), "--data", str(data), "--output", str(out),
        "--steps", "4", "--eval-every", "2", "--batch-pairs", "8", "--lr", "3e-3", "--prompts", "2",
        "--samples", "2", "--max-new-tokens", "5", "--precision", "fp32",
        "--columns", "chosen_rating=metadata.score_chosen,rejected_rating=metadata.score_rejected",
    ]  # fmt: skip


def test_the_command_writes_one_curve_per_loss_and_beta(tiny_decoder_dir, gold_dir, tmp_path):
    write_rated_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "study"
    args = [*common(tiny_decoder_dir, gold_dir, tmp_path / "pairs.jsonl", out), "--losses", "dpo,ipo,slic"]
    result = run([*args, "--betas", "0.1,0.5"])
    assert result.exit_code == 0, result.output
    assert (out / "daa_overopt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "daa_overopt.json").read_text())
    names = ["dpo β=0.1", "dpo β=0.5", "ipo β=0.1", "ipo β=0.5", "slic β=0.1", "slic β=0.5"]
    assert list(report["curves"]) == names
    markdown = (out / "daa_overopt.md").read_text()
    starts = set()
    for name, curve in report["curves"].items():
        assert f"| {name} | 0 |" in markdown and f"| {name} | 4 |" in markdown
        steps = [p["step"] for p in curve["points"]]
        assert steps == [0, 2, 4]
        first, last = curve["points"][0], curve["points"][-1]
        assert first["kl"] == 0.0 and first["sqrt_kl"] == 0.0
        assert last["kl"] != 0.0 and last["train_loss"] is not None
        starts.add(first["gold"])
    assert curve["registered_loss"] == "hinge"
    assert len(starts) == 1  # the same start and the same sampling seeds: the same step-0 replies and gold
    assert "R(d) = d·(α − β·log d)" in markdown


def test_reward_augmented_dpo_is_an_extra_curve_with_lora(tiny_decoder_dir, gold_dir, tmp_path):
    write_rated_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "ra"
    args = [*common(tiny_decoder_dir, gold_dir, tmp_path / "pairs.jsonl", out), "--losses", "dpo,dpo+ra"]
    result = run([*args, "--betas", "0.1", "--lora", "--lora-r", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "daa_overopt.json").read_text())
    assert list(report["curves"]) == ["dpo β=0.1", "dpo+ra β=0.1"]
    assert report["goal_score"] == 9 and report["train"]["lora"]["r"] == 4
    plain, augmented = report["curves"]["dpo β=0.1"], report["curves"]["dpo+ra β=0.1"]
    assert augmented["reward_augmented"] and not plain["reward_augmented"]
    assert plain["points"][0]["kl"] == 0.0 and augmented["points"][0]["kl"] == 0.0  # LoRA's B = 0 at the start
    assert augmented["points"][-1]["kl"] != 0.0
    assert "goal score 9" in (out / "daa_overopt.md").read_text()


def test_reward_augmentation_without_ratings_is_refused(tiny_decoder_dir, gold_dir, tmp_path):
    write_rated_pairs(tmp_path / "pairs.jsonl")
    args = common(tiny_decoder_dir, gold_dir, tmp_path / "pairs.jsonl", tmp_path / "x")
    no_columns = args[: args.index("--columns")]
    result = run([*no_columns, "--losses", "dpo+ra", "--betas", "0.1"])
    assert result.exit_code != 0
    assert "+ra variant needs chosen_rating" in result.output
    unknown = run([*args, "--losses", "nope", "--betas", "0.1"])
    assert unknown.exit_code != 0 and "nope" in unknown.output
