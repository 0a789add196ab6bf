"""Ensemble member errors: exact values on hand-built scores, the shared-error bound on random ones,
and ``rewardlab ensemble-errors`` end to end on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.evaluate.ensemble_errors import ensemble_errors
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


def margins_to_scores(margins: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Chosen score = the margin, rejected score = 0."""
    chosen = np.asarray(margins, dtype=np.float64)
    return chosen, np.zeros_like(chosen)


def test_disjoint_errors_are_fixed_by_the_mean():
    """3 members, 10 pairs, margin +1 where right and −1 where wrong; member m is wrong on pairs 2m, 2m+1.

    - each accuracy 8/10 = 0.8; no two members are wrong together: P(both wrong) = 0, though 0.2·0.2 =
      0.04 were they independent; the φ coefficient is (0 − 0.04) / (0.2·0.8) = −0.25.
    - every member wrong on no pair (0; 0.2³ = 0.008 if independent); someone wrong on 6/10.
    - mean: a wrong member's pair has margin (−1 + 1 + 1)/3 = 1/3 > 0, so the mean is right on all 10.
    - wco: min chosen = −1 against min rejected = 0 on the 6 pairs with an error: right on 4/10 only.
    - uwo (λ = 1): chosen 1/3 − Var(−1, 1, 1) = 1/3 − (1 − 1/9) = −5/9 < 0 = rejected: also 4/10.
    """
    margins = [[-1, -1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, -1, -1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, -1, -1, 1, 1, 1, 1]]
    out = ensemble_errors(*margins_to_scores(margins))
    assert out.member_accuracy == pytest.approx([0.8, 0.8, 0.8])
    assert [p.both_wrong for p in out.member_pairs] == [0, 0, 0]
    assert [p.both_wrong_if_independent for p in out.member_pairs] == pytest.approx([0.04] * 3)
    assert [p.error_correlation for p in out.member_pairs] == pytest.approx([-0.25] * 3)
    assert out.all_wrong == 0 and out.all_wrong_if_independent == pytest.approx(0.008)
    assert out.any_wrong == pytest.approx(0.6)
    assert out.ensemble_accuracy == pytest.approx({"mean": 1.0, "wco": 0.4, "uwo": 0.4})


def test_fully_shared_errors_are_not():
    """The same 3 members all wrong on pairs 0 and 1 (margins −1, −2, −3 there, +1 elsewhere):
    accuracy 0.8 each, P(both wrong) = 0.2 (0.04 if independent), φ = (0.2 − 0.04)/0.16 = 1,
    every member wrong on 0.2 of the pairs, and every aggregation stays at 0.8 = 1 − 0.2."""
    margins = [[-k, -k, 1, 1, 1, 1, 1, 1, 1, 1] for k in (1, 2, 3)]
    out = ensemble_errors(*margins_to_scores(margins))
    assert out.member_accuracy == pytest.approx([0.8] * 3)
    assert [p.both_wrong for p in out.member_pairs] == pytest.approx([0.2] * 3)
    assert [p.error_correlation for p in out.member_pairs] == pytest.approx([1.0] * 3)
    assert out.all_wrong == pytest.approx(0.2) and out.mean_error_correlation == pytest.approx(1.0)
    assert out.ensemble_accuracy == pytest.approx({"mean": 0.8, "wco": 0.8, "uwo": 0.8})


def synthetic_members(shared: float, rng: np.random.Generator, members: int = 5, pairs: int = 20_000):
    """Member margins = a latent pair difficulty (weight ``shared``) + each member's own noise, so
    their errors are independent at shared = 0 and identical at shared = 1; scales differ by member."""
    latent = rng.normal(size=pairs)
    own = rng.normal(size=(members, pairs))
    margins = 0.5 + np.sqrt(shared) * latent + np.sqrt(1 - shared) * own
    scales = np.arange(1, members + 1, dtype=np.float64)[:, None] * 10.0
    rejected = rng.normal(size=(members, pairs)) * scales
    return rejected + margins * scales, rejected, scales[:, 0]


def test_independent_errors_shrink_and_shared_ones_stay():
    """Margin ~ N(0.5, 1) per member: each is wrong with probability Φ(−0.5) ≈ 0.309. Independent
    members (shared = 0) are all wrong on ≈ 0.309⁵ ≈ 0.0028 of the pairs and their mean is right far
    more often than any one of them (a majority-like vote of 5); identical errors (shared = 1) leave
    the shared fraction at 0.309 and the ensemble no better than a member. With each member's scale
    (10·m) as its std, standardising puts them on one scale, and the bound 1 − shared holds throughout."""
    rng = np.random.default_rng(0)
    outs = {}
    for shared in (0.0, 0.5, 1.0):
        chosen, rejected, scales = synthetic_members(shared, rng)
        outs[shared] = ensemble_errors(chosen, rejected, (np.zeros(5), scales))
        assert all(a == pytest.approx(0.309, abs=0.012) for a in 1 - np.array(outs[shared].member_accuracy))
        for method in ("mean", "wco"):
            assert outs[shared].ensemble_accuracy[method] <= 1 - outs[shared].all_wrong + 1e-12
    independent, half, identical = outs[0.0], outs[0.5], outs[1.0]
    assert independent.all_wrong == pytest.approx(0.309**5, abs=0.002)
    assert abs(independent.mean_error_correlation) < 0.03
    assert independent.ensemble_accuracy["mean"] > max(independent.member_accuracy) + 0.1
    assert identical.all_wrong == pytest.approx(0.309, abs=0.012) and identical.mean_error_correlation == 1.0
    assert identical.ensemble_accuracy["mean"] == pytest.approx(identical.member_accuracy[0])
    assert independent.all_wrong < half.all_wrong < identical.all_wrong
    assert independent.ensemble_accuracy["mean"] > half.ensemble_accuracy["mean"] > identical.ensemble_accuracy["mean"]


def test_standardising_makes_the_ensemble_scale_free():
    """Rescaling a member (a·R + b, its statistics with it) changes nothing once standardised."""
    rng = np.random.default_rng(1)
    chosen, rejected = rng.normal(size=(3, 200)), rng.normal(size=(3, 200))
    means, stds = np.zeros(3), np.ones(3)
    base = ensemble_errors(chosen, rejected, (means, stds))
    chosen[1], rejected[1] = 100 * chosen[1] + 7, 100 * rejected[1] + 7
    scaled = ensemble_errors(chosen, rejected, (np.array([0, 7, 0]), np.array([1, 100, 1])))
    assert scaled.ensemble_accuracy == pytest.approx(base.ensemble_accuracy)
    assert scaled.member_accuracy == base.member_accuracy


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="≥ 2 members"):
        ensemble_errors(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="chosen and rejected alike"):
        ensemble_errors(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.fixture(scope="module")
def members(tiny_encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    dirs = []
    for seed in range(3):
        torch.manual_seed(seed)
        dirs.append(RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(root / f"m{seed}"))
    return dirs


def test_cli_writes_the_member_error_report(members, tmp_path):
    out = tmp_path / "report"
    args = ["ensemble-errors", "default", *map(str, members), "--split", "test", "--report", str(out)]
    result = CliRunner().invoke(app, [*args, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "no saved reward statistics" in result.output  # tiny untrained members: aggregated raw
    report = json.loads((out / "ensemble_errors.json").read_text())
    assert report["pairs"] == 370 and len(report["member_accuracy"]) == 3 and len(report["member_pairs"]) == 3
    assert report["standardised"] is False
    for method in ("mean", "wco"):
        assert report["ensemble_accuracy"][method] <= 1 - report["all_wrong"] + 1e-12
    assert "every member wrong (shared errors)" in (out / "ensemble_errors.md").read_text()

    one = CliRunner().invoke(app, ["ensemble-errors", "default", str(members[0])])
    assert one.exit_code == 2 and "at least two reward models" in one.output
    missing = CliRunner().invoke(app, ["ensemble-errors", "default", str(members[0]), str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
