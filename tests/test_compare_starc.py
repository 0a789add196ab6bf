"""``compare`` reports the STARC distance only where it is defined: not for a preference (GPM) model,
whose per-reply pseudo-rewards are not a reward function (issue 27)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.compare import compare_models
from rewardlab.evaluate.report import render_comparison_markdown
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)

PAIRS = [PreferencePair(f"question {i}", "a helpful and long answer " * (1 + i % 3), f"no {i}") for i in range(8)]


@pytest.fixture(scope="module")
def models(tiny_encoder_dir) -> tuple[RewardModel, RewardModel]:
    """A scalar reward model and a GPM model (a 4-output head read as two 2-d preference blocks)."""
    torch.manual_seed(0)
    scalar = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    gpm = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64, outputs=4, head="preference")
    gpm.info.objective, gpm.info.objective_args = "gpm", {"dim": 2, "beta": 1.0}
    return scalar, gpm


def test_starc_is_not_defined_for_a_preference_model(models):
    scalar, gpm = models
    for a, b, names in ((scalar, gpm, "model B"), (gpm, scalar, "model A"), (gpm, gpm, "model A and B")):
        comparison = compare_models(a, b, PAIRS, precision="fp32")
        assert comparison.starc_distance is None
        assert (
            comparison.starc_undefined.startswith(names + ":")
            and "preference (GPM) model" in comparison.starc_undefined
        )
        report = comparison.to_dict()
        assert report["starc_distance"] is None and report["starc_undefined"] == comparison.starc_undefined
        markdown = render_comparison_markdown(comparison, "a", "b", "data")
        assert "- STARC distance between the two rewards: not defined (" in markdown
        assert "scores pairs of replies, not each reply" in markdown


def test_starc_of_two_scalar_models_is_still_reported(models):
    """A model and itself: distance 0, the number in the markdown, no reason in the JSON."""
    scalar, _ = models
    comparison = compare_models(scalar, scalar, PAIRS, precision="fp32")
    assert comparison.starc_distance == pytest.approx(0.0, abs=1e-6) and comparison.starc_undefined is None
    assert "starc_undefined" not in comparison.to_dict()
    assert "- STARC distance between the two rewards: 0.0000 " in render_comparison_markdown(comparison, "a", "a", "d")


def test_compare_cli_with_a_preference_model(models, tmp_path):
    scalar, gpm = models
    paths = [scalar.save_pretrained(tmp_path / "scalar"), gpm.save_pretrained(tmp_path / "gpm")]
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in PAIRS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["compare", *map(str, paths), str(data), "--report", str(tmp_path / "r"), "--precision", "fp32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "STARC distance between the two rewards: not defined" in " ".join(result.output.split())
    report = json.loads((Path(tmp_path / "r") / "compare.json").read_text())
    assert report["starc_distance"] is None and "preference (GPM) model" in report["starc_undefined"]
    assert math.isfinite(report["paired"]["difference"])
