"""A preference-embedding (GPM) model from the command line: ``serve`` refuses it in one line, and
``eval`` reports only what its pairwise probabilities define (issue 27, bugs 5 and 9)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.report import render_markdown
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.server import create_app

torch.set_num_threads(1)

PER_REPLY_LINES = ("mean reward margin", "Spearman correlation of reward")


@pytest.fixture(scope="module")
def gpm_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A saved GPM model: a 4-output head read as two 2-d preference-embedding blocks."""
    torch.manual_seed(0)
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64, outputs=4, head="preference")
    model.info.objective, model.info.objective_args = "gpm", {"dim": 2, "beta": 1.0}
    return model.save_pretrained(tmp_path_factory.mktemp("gpm") / "model")


@pytest.fixture(scope="module")
def scalar_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    return model.save_pretrained(tmp_path_factory.mktemp("scalar") / "model")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    rows = [
        {"prompt": f"question {i}", "chosen": "a helpful and long answer " * (1 + i % 3), "rejected": f"no {i}"}
        for i in range(8)
    ]
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_serve_refuses_a_preference_model_in_one_line(gpm_dir):
    """Before: the model loaded, uvicorn started, and the warm-up's first forward pass failed inside
    the server's start-up: a 30-line traceback and "Application startup failed"."""
    result = CliRunner().invoke(app, ["serve", str(gpm_dir), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "startup failed" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(result.output.split())  # rich wraps the one message at the terminal width
    assert text.startswith("error:") and "scores pairs of replies, not single replies" in text
    assert "rewardlab eval" in text and "rewardlab compare" in text
    assert all("error:" not in line for line in lines[1:])  # one message, nothing after it


def test_create_app_refuses_a_preference_model(gpm_dir):
    with pytest.raises(ValueError, match=r"preference model .* scores pairs"):
        create_app(RewardModel.from_pretrained(gpm_dir))


def test_eval_of_a_preference_model_reports_no_per_reply_reward_numbers(gpm_dir, pairs_file, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(gpm_dir), str(pairs_file), "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "r" / "eval.md").read_text()
    for text in (result.output, markdown):
        assert not any(line in text for line in PER_REPLY_LINES), text
        assert "calibration of P(chosen ≻ rejected)" in text and "accuracy when the chosen reply is longer" in text
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert "mean_margin" not in report and "reward_length_spearman" not in report["length_bias"]
    assert report["compares_pairs"] is True and report["overall"]["n"] == 8
    assert {"chosen_longer", "chosen_shorter"} <= set(report["length_bias"]) and "ece" in report["calibration"]
    page = (tmp_path / "r" / "eval.html").read_text()
    assert 'id="reliability"' in page and 'id="histogram"' not in page and 'id="length"' not in page


def test_eval_of_a_scalar_model_still_reports_them(scalar_dir, pairs_file, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(scalar_dir), str(pairs_file), "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert all(line in result.output for line in PER_REPLY_LINES)
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert report["compares_pairs"] is False and math.isfinite(report["mean_margin"])
    assert "reward_length_spearman" in report["length_bias"]
    page = (tmp_path / "r" / "eval.html").read_text()
    assert 'id="histogram"' in page and 'id="length"' in page


def test_preference_model_accuracy_still_reads_its_own_probabilities(gpm_dir):
    """Accuracy and calibration are unchanged: σ(ℓ) of the model's own log-odds ℓ per pair."""
    model = RewardModel.from_pretrained(gpm_dir)
    pairs = [PreferencePair(f"q{i}", f"yes {i} " * (i + 1), f"no {i}") for i in range(6)]
    result = evaluate_pairs(model, pairs, precision="fp32")
    prompts = [p.prompt for p in pairs]
    logits = model.preference_logits(
        model.encode(prompts, [p.chosen for p in pairs]).ids,
        model.encode(prompts, [p.rejected for p in pairs]).ids,
        precision="fp32",
    )
    assert result.overall.accuracy == pytest.approx(sum((x > 0) + 0.5 * (x == 0) for x in logits) / len(pairs))
    assert result.mean_margin is None and result.length_bias.reward_length_spearman is None
    assert "mean reward margin" not in render_markdown(result, "m", "d")
