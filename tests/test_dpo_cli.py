"""``rewardlab dpo`` end to end on the tiny decoder: files, metrics, a falling loss, the report."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import split_pairs
from rewardlab.data.records import PreferencePair
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import resolve_precision

torch.set_num_threads(1)

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers", "snow", "bikes"]


def write_pairs(path) -> list[PreferencePair]:
    """24 pairs whose chosen reply is a polite answer and whose rejected one is a refusal."""
    rows = []
    for i, topic in enumerate(TOPICS * 2):
        rows.append(
            {
                "id": f"p{i}",
                "prompt": f"Tell me about {topic}, please ({i}).",
                "chosen": f"Sure! Here is something about {topic}.",
                "rejected": "No.",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"], id=r["id"]) for r in rows]


def run(args: list[str]):
    return CliRunner().invoke(app, ["dpo", *args], catch_exceptions=False)


COMMON = ["train.steps=6", "train.batch_pairs=16", "train.lr=3e-3", "num_threads=1"]


def test_dpo_trains_saves_and_reports(tiny_decoder_dir, tiny_encoder_dir, tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    judge = tmp_path / "judge"
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(judge)
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["--judge-model", str(judge), "--gradient-checkpointing", *COMMON, "eval.win_prompts=3"]
    args += ["eval.max_new_tokens=5", "train.loss_args.beta=0.5"]
    result = run(args)
    assert result.exit_code == 0, result.output
    assert "held-out implicit-reward accuracy" in result.output

    for name in ("config.yaml", "metrics.jsonl", "report.json", "report.md", "policy/config.json"):
        assert (out / name).is_file(), name
    assert (out / "policy" / "model.safetensors").is_file()
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 7))
    assert {"loss", "accuracy", "margin", "logratio_data", "grad_norm", "seconds"} <= set(steps[0])
    assert steps[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference at step 1: −log σ(0)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.05

    report = json.loads((out / "report.json").read_text())
    expected_test = len(split_pairs(pairs, validation=0.1, test=0.2, seed=0).test)
    held = report["held_out"]
    assert held["implicit_accuracy"]["n"] == expected_test == report["data"]["test_pairs"]
    assert (
        held["implicit_accuracy"]["ci_low"]
        <= held["implicit_accuracy"]["accuracy"]
        <= held["implicit_accuracy"]["ci_high"]
    )
    # the refusal is learned against: every held-out pair's chosen log-ratio beats its rejected one
    assert held["implicit_accuracy"]["accuracy"] == 1.0 and held["mean_implicit_margin"] > 0
    assert report["loss_args"] == {"beta": 0.5} and report["steps"] == 6
    assert report["precision"] == resolve_precision("auto")  # bf16 passes where the CPU has them
    win = report["win_rate"]
    assert win["win_rate"]["n"] == len(win["samples"]) == 3
    assert 0 <= win["win_rate"]["accuracy"] <= 1
    assert "Win rate of the trained policy" in (out / "report.md").read_text()
    # the step metric is named for what it is; the KL is estimated on the policy's own samples
    kl = report["sampled_kl"]
    assert kl["prompts"] == 4 and kl["samples_per_prompt"] == 4 and kl["kl"] > 0
    assert "KL(π‖π_ref)" in result.output and "## KL from the base policy" in (out / "report.md").read_text()

    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out / "policy")
    original = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    assert not torch.equal(saved.model.embed_tokens.weight, original.model.embed_tokens.weight)

    again = CliRunner().invoke(app, ["dpo", *args])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_dpo_lists_every_config_problem(tiny_decoder_dir, tmp_path):
    result = CliRunner().invoke(
        app,
        ["dpo", "--policy", str(tiny_decoder_dir), "--output", str(tmp_path / "r"), "--loss", "nope", "train.steps=0"],
    )
    assert result.exit_code == 2
    assert "train.loss" in result.output and "unknown policy loss 'nope'" in result.output
    assert "steps must be >= 1" in result.output
    assert not (tmp_path / "r").exists()
    result = CliRunner().invoke(app, ["dpo", "train.steps=0", "eval.win_prompts=0", "nokey=1", "--precision", "fp16"])
    assert result.exit_code == 2
    assert "unknown key 'nokey'" in result.output and "train.steps must be >= 1" in result.output
    assert "train.precision must be auto, bf16 or fp32 (got 'fp16')" in result.output


def test_dpo_can_be_evaluated_on_the_validation_split(tiny_decoder_dir, tmp_path):
    """Options are chosen on validation pairs, so the test split stays unseen until the final run."""
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    result = run([*args, *COMMON, "train.steps=1", "eval.split=validation", "data.validation_fraction=0.25"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    validation = split_pairs(pairs, validation=0.25, test=0.2, seed=0).validation
    assert report["data"]["evaluated_on"] == "validation"
    assert report["held_out"]["implicit_accuracy"]["n"] == len(validation) == report["data"]["test_pairs"]
    bad = run([*args, "eval.split=train", "--overwrite"])
    assert bad.exit_code == 2 and "eval.split must be test or validation" in bad.output


def test_tgdpo_runs_from_the_cli_with_a_guide_model(tiny_decoder_dir, tmp_path):
    """``--loss tgdpo`` used to stop at "pass a guide_model", which no option or key could pass."""
    write_pairs(tmp_path / "pairs.jsonl")
    data = ["--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), *COMMON]
    guide = run([*data, "--output", str(tmp_path / "guide"), "train.steps=2", "eval.kl_samples=0"])
    assert guide.exit_code == 0, guide.output
    out = tmp_path / "tgdpo"
    args = [*data, "--output", str(out), "--loss", "tgdpo", "--guide-model", str(tmp_path / "guide" / "policy")]
    result = run([*args, "eval.kl_prompts=2", "eval.kl_samples=2", "eval.max_new_tokens=4"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["loss"] == "tgdpo" and report["guide_model"] == str(tmp_path / "guide" / "policy")
    assert report["held_out"]["implicit_accuracy"]["accuracy"] == 1.0
    assert report["sampled_kl"]["samples_per_prompt"] == 2 and "sampled_kl" not in json.loads(
        (tmp_path / "guide" / "report.json").read_text()
    )
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert "guide model:" in (out / "report.md").read_text()


def test_tgdpo_without_a_guide_model_is_a_config_error_naming_the_key(tiny_decoder_dir, tmp_path):
    result = CliRunner().invoke(
        app, ["dpo", "--policy", str(tiny_decoder_dir), "--output", str(tmp_path / "r"), "--loss", "tgdpo"]
    )
    assert result.exit_code == 2
    assert "guide_model: policy loss 'tgdpo' needs token rewards" in result.output and "--guide-model" in result.output
    assert not (tmp_path / "r").exists()
    stray = CliRunner().invoke(app, ["dpo", "--guide-model", str(tiny_decoder_dir), "eval.kl_samples=-1"])
    assert stray.exit_code == 2
    assert "guide_model is set but policy loss 'dpo' reads no token rewards" in stray.output
    assert "eval.kl_samples must be >= 0" in stray.output
