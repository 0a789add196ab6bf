"""``overopt`` standardises each proxy with its saved statistics before aggregating the ensemble
(issue 27: members on different reward scales were aggregated raw, so one decided the ensemble)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.sampling.overopt import selection_scores

torch.set_num_threads(1)

ENSEMBLE = ("ensemble mean", "ensemble wco", "ensemble uwo")


def test_a_proxy_rescaled_by_100_picks_the_same_replies():
    """Proxy B' = 100·B + 7 with its statistics alike: the aggregated scores do not move; raw, B' is the ensemble.

    A = [0, 1, 2], B = [2, 0, 1], μ = 1, σ = 1 for both: z_A = [−1, 0, 1], z_B = [1, −1, 0];
    mean = [0, −0.5, 0.5], wco = [−1, −1, 0].
    """
    a, b = np.array([0.0, 1.0, 2.0]), np.array([2.0, 0.0, 1.0])
    stats = ([1.0, 1.0], [1.0, 1.0])
    rules = selection_scores(np.stack([a, b]), 1.0, stats)
    assert rules["ensemble mean"].tolist() == pytest.approx([0.0, -0.5, 0.5])
    assert rules["ensemble wco"].tolist() == pytest.approx([-1.0, -1.0, 0.0])
    rescaled = selection_scores(np.stack([a, 100 * b + 7]), 1.0, ([1.0, 107.0], [1.0, 100.0]))
    for name in ENSEMBLE:
        assert rescaled[name].tolist() == pytest.approx(rules[name].tolist())
    raw = selection_scores(np.stack([a, 100 * b + 7]), 1.0)
    assert raw["ensemble mean"].argmax() == 0  # raw, B' alone decides: its best reply is the first
    assert rules["ensemble mean"].argmax() == 2


def _proxy(encoder_dir, path, seed: int, scale: float = 1.0, statistics: bool = True) -> RewardModel:
    torch.manual_seed(seed)
    model = RewardModel.from_backbone(str(encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50 * scale
    model.model.classifier.bias.data *= scale
    if statistics:
        scores = torch.tensor(model.score(["q"] * 4, ["one", "two two", "three", "a longer reply"], precision="fp32"))
        model.info.reward_mean, model.info.reward_std = float(scores.mean()), float(scores.std())
    model.save_pretrained(path)
    return model


def test_overopt_ensemble_curves_ignore_a_proxys_scale(tiny_decoder_dir, tiny_encoder_dir, tmp_path):
    gold = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(tmp_path / "gold")
    first = _proxy(tiny_encoder_dir, tmp_path / "p1", seed=1)
    second = _proxy(tiny_encoder_dir, tmp_path / "p2", seed=2)
    wide = _proxy(tiny_encoder_dir, tmp_path / "p2x100", seed=2, scale=100.0)
    assert wide.info.reward_std == pytest.approx(100 * second.info.reward_std, rel=1e-3)
    _proxy(tiny_encoder_dir, tmp_path / "bare", seed=2, statistics=False)
    assert first.info.reward_std is not None

    def study(name: str, proxy2: str) -> tuple[dict, str]:
        args = ["overopt", "--policy", str(tiny_decoder_dir), "--gold", str(gold), "--output", str(tmp_path / name)]
        args += ["--n", "5", "--prompts", "3", "--max-new-tokens", "6", "--precision", "fp32"]
        args += ["--cache-dir", str(tmp_path / "generations"), "--proxy", str(tmp_path / "p1"), "--proxy", proxy2]
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / name / "overopt.json").read_text()), " ".join(result.output.split())

    (plain, _), (scaled, _) = study("plain", str(tmp_path / "p2")), study("scaled", str(tmp_path / "p2x100"))
    assert plain["ensemble_normalisation"]["standardised"] and scaled["ensemble_normalisation"]["standardised"]
    for name in ENSEMBLE:
        for key in ("proxy", "gold"):
            assert scaled["curves"][name][key] == pytest.approx(plain["curves"][name][key], abs=1e-4), (name, key)

    raw, said = study("raw", str(tmp_path / "bare"))  # the CLI prints the RawEnsembleWarning as one line
    assert "warning:" in said and "no saved reward statistics" in said
    assert raw["ensemble_normalisation"] == {"standardised": False, "reward_means": None, "reward_stds": None}
