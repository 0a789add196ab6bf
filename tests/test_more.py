"""MORE (Zeng et al. 2023): the min-norm source weights, the weighted loss, its calibration claim on
synthetic sources with a known reward, a tiny ``rewardlab train`` on two sources, per-source ECE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.calibration import expected_calibration_error
from rewardlab.evaluate.per_source import per_source_accuracy, per_source_lines
from rewardlab.objectives import get_objective
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.diversified import min_norm_weights, more_loss

LN2 = math.log(2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_min_norm_weights_hand_computed():
    """Two rows: λ₁ = (g₂·g₂ − g₁·g₂)/‖g₁ − g₂‖². g₁ = (1, 0), g₂ = (0, 2): (4 − 0)/(1 + 4) = 0.8.
    g₁ = (1, 0), g₂ = (2, 0): (4 − 2)/1 = 2, clipped to 1 (g₁ is the shorter point of the hull).
    Three rows (1, 0), (0, 1), (1, 1): the hull's nearest point to 0 is (½, ½) on the first edge, λ = (½, ½, 0).
    (1, 0), (−1, 0), (0, 1): 0 itself is in the hull, at λ = (½, ½, 0)."""
    assert min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, 2.0]])).tolist() == pytest.approx([0.8, 0.2])
    assert min_norm_weights(torch.tensor([[1.0, 0.0], [2.0, 0.0]])).tolist() == pytest.approx([1.0, 0.0])
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert min_norm_weights(rows).tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)
    rows = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    assert min_norm_weights(rows).tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)


def test_more_loss_hand_computed():
    """Rewards 0, so d = 0 and each pair's BT loss is ln 2, its slope σ(0) − 1 = −½. Pair 0 (source 0) has
    φ_c − φ_r = (2, 0), pair 1 (source 1) (0, 4): g₀ = −½·(2, 0) = (−1, 0), g₁ = (0, −2).
    normalize="none": λ₀ = (4 − 0)/(1 + 4) = 0.8, weights K·λ = 2·0.8 = 1.6 and 0.4: losses 1.6 ln 2, 0.4 ln 2.
    normalize="l2": unit g's, λ = (½, ½), weights 1: plain BT. No source or features: plain BT."""
    zeros = torch.zeros(2)
    source, gap = torch.tensor([0, 1]), torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    out = more_loss(zeros, zeros, source=source, feature_gap=gap, normalize="none")
    assert out.losses.tolist() == pytest.approx([1.6 * LN2, 0.4 * LN2])
    assert out.metrics["source_weight"].tolist() == pytest.approx([1.6, 0.4])
    assert more_loss(zeros, zeros, source=source, feature_gap=gap).losses.tolist() == pytest.approx([LN2, LN2])
    assert more_loss(zeros, zeros).losses.tolist() == pytest.approx([LN2, LN2])


def test_two_sources_under_l2_are_plain_bradley_terry():
    """The min-norm point of two unit vectors is their midpoint, so with two sources and the paper's l2
    normalisation MORE's weights are K·½ = 1 whatever the gradients: it can only differ from BT with three
    sources or more (the paper mixes five)."""
    g = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(12, generator=g), torch.randn(12, generator=g)
    source, gap = torch.arange(12) % 2, torch.randn(12, 5, generator=g)
    out = more_loss(chosen, rejected, source=source, feature_gap=gap)
    assert out.losses.tolist() == pytest.approx(bradley_terry_loss(chosen, rejected).losses.tolist())


def test_bad_normalize_is_one_clear_error():
    objective = get_objective("more")
    assert objective.check_values({"normalize": "l1"}) == [
        "objective.args: normalize must be one of l2, loss, none (got 'l1') (objective 'more')"
    ]
    assert objective.inputs[-2:] == ("source", "feature_gap") and objective.required == ("chosen", "rejected")


def labelled_gaps(n: int, diversified: float, generator: torch.Generator, beta: float = 3.0) -> torch.Tensor:
    """φ_c − φ_r of ``n`` pairs of 3 features, labelled by the true reward β·(x₀ + diversified·x₁):
    x₀ is the preference every source shares, x₁ one only some sources have, x₂ irrelevant."""
    x = torch.randn(n, 3, generator=generator)
    preferred = torch.rand(n, generator=generator) < torch.sigmoid(beta * (x[:, 0] + diversified * x[:, 1]))
    return torch.where(preferred[:, None], x, -x)


def train_linear(seed: int, more: bool, steps: int = 400) -> torch.Tensor:
    """A linear reward w·φ trained on three equal sources: two prefer x₁ as well as x₀, one only x₀."""
    g = torch.Generator().manual_seed(seed)
    gaps = torch.cat([labelled_gaps(1500, d, g) for d in (1.0, 1.0, 0.0)])
    source = torch.arange(3).repeat_interleave(1500)
    w = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=0.05)
    for _ in range(steps):
        batch = torch.randperm(len(gaps), generator=g)[:96]
        rewards = gaps[batch] @ w
        zeros = torch.zeros_like(rewards)
        out = more_loss(rewards, zeros, source=source[batch], feature_gap=gaps[batch]) if more else None
        losses = out.losses if out is not None else bradley_terry_loss(rewards, zeros).losses
        optimizer.zero_grad()
        losses.mean().backward()
        optimizer.step()
    return w.detach()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_is_better_calibrated_on_the_shared_preference(seed):
    """The paper's claim: diversified preferences hurt calibration on the shared one, and MORE improves it.
    Two of three sources also prefer x₁: BT on the mix learns x₁ with 2/3 of the pairs behind it, which is
    noise on pairs judged by the shared preference alone (true reward 3·x₀). MORE's min-norm weights put
    half the weight on each gradient direction (the two alike sources share ½), so less x₁ is learned and
    the ECE on the shared preference's pairs falls."""
    plain, more = train_linear(seed, more=False), train_linear(seed, more=True)
    test = labelled_gaps(20000, 0.0, torch.Generator().manual_seed(1000 + seed))
    ece = {
        name: expected_calibration_error(torch.sigmoid(test @ w).numpy()) for name, w in [("bt", plain), ("more", more)]
    }
    assert ece["more"] < ece["bt"] - 0.01, ece
    assert abs(float(more[1])) < abs(float(plain[1])), (plain, more)


def test_per_source_ece_counts_each_sources_pairs():
    """Source a: gaps (2, 2) → p = σ(2) ≈ 0.881 twice, both right: ECE = 1 − 0.881 = 0.119.
    Source b: gaps (0, −1): p = ½ and σ(−1) ≈ 0.269, confidences ½ (right, scored ½) and 0.731 (wrong):
    bins differ, ECE = ½·|½ − ½| + ½·|0 − 0.731| = 0.366."""
    pairs = [PreferencePair("p", "c", "r", source=f"[{s}] f.jsonl:{i}") for i, s in enumerate("aabb")]
    chosen, rejected = [2.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]
    correct = [1.0, 1.0, 0.5, 0.0]
    out = per_source_accuracy(pairs, correct, [True] * 4, (chosen, rejected))
    assert out.ece["a"] == pytest.approx(1 - 1 / (1 + math.exp(-2)))
    assert out.ece["b"] == pytest.approx(0.5 * (1 / (1 + math.exp(-1))))
    assert [e.n for e in out.per_source.values()] == [2, 2]
    assert "| a | 1.0000 |" in "\n".join(per_source_lines(out)) and "| ECE |" in per_source_lines(out)[3]


def write_source(path: Path, n: int, topic: str) -> Path:
    rows = [
        {"prompt": f"About {topic} {i}?", "chosen": f"A kind, clear answer on {topic} {i}.", "rejected": "No."}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_more_on_three_sources_reports_per_source_ece(tiny_encoder_dir, tmp_path):
    """Three sources, so MORE's weights differ from 1 (two under l2 would be plain BT)."""
    a, b = write_source(tmp_path / "a.jsonl", 20, "cats"), write_source(tmp_path / "b.jsonl", 30, "dogs")
    c = write_source(tmp_path / "c.jsonl", 20, "owls")
    args = ["train", "--data", str(a), "--data", str(b), "--data", str(c), "--backbone", str(tiny_encoder_dir)]
    args += ["--objective", "more", "--output", str(tmp_path / "run"), "max_steps=3", "precision=fp32"]
    args += ["progress=false", "num_threads=1", "model.max_length=32"]  # one pass a step for `source`
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report" / "eval.json").read_text())
    by_source = report["extras"]["per_source"]
    assert set(by_source["ece"]) == {"a", "b", "c"} and all(0 <= v <= 0.5 for v in by_source["ece"].values())
    assert f"ECE {by_source['ece']['a']:.4f}" in result.output
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(m["loss"]) for m in metrics if "loss" in m)


def test_feature_gap_gives_the_heads_gradient_per_source(tiny_encoder_dir):
    """The trainer's ``feature_gap`` is φ(chosen) − φ(rejected), so mean_i (σ(d_i) − 1)·feature_gap_i over a
    source's pairs is autograd's gradient of that source's mean BT loss with respect to the head's weight
    (dropout off, so the training pass and the feature pass read the same φ); ``source`` indexes the sorted names."""
    from rewardlab.models.reward_model import RewardModel, scalar_head
    from rewardlab.training.batching import encode_pairs

    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32, dropout=0.0)
    names = ["b", "a", "b", "a", "c"]
    pairs = [
        PreferencePair(f"q{i}", f"good answer {i}", "no", source=f"[{n}] f.jsonl:{i}") for i, n in enumerate(names)
    ]
    encoded = encode_pairs(model, pairs, head_features=True)
    model.model.train()
    batch, _ = encoded.forward(model, range(5))
    assert model.model.training and batch["source"].tolist() == [1, 0, 1, 0, 2]
    assert batch["feature_gap"].shape == (5, model.model.config.hidden_size)
    weight = scalar_head(model.model).weight
    for t in range(3):
        mask = batch["source"] == t
        loss = bradley_terry_loss(batch["chosen"][mask], batch["rejected"][mask]).losses.mean()
        (grad,) = torch.autograd.grad(loss, weight, retain_graph=True)
        slope = torch.sigmoid(batch["chosen"] - batch["rejected"]).detach() - 1
        expected = (slope[mask, None] * batch["feature_gap"][mask]).mean(0)
        assert grad.view(-1).tolist() == pytest.approx(expected.tolist(), abs=1e-5)


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "diversified_calibration.py"


def test_benchmark_tiny_runs_and_resumes(tmp_path):
    """``--tiny`` trains both models, writes per-source tables with intervals that hold their estimates'
    accuracy, and a second run reuses the models and scores (same numbers, no new training)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("diversified_calibration", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["diversified_calibration"] = bench
    spec.loader.exec_module(bench)
    first = bench.main(["--tiny", "--work", str(tmp_path)])
    rows = first["comparison"]["per_source"]
    assert set(rows) == {"hh-harmless", "ultrafeedback", "tulu1", "all"}
    assert rows["all"]["n"] == sum(rows[s]["n"] for s in ("hh-harmless", "ultrafeedback", "tulu1"))
    for row in rows.values():
        for name in ("bradley_terry", "more"):
            low, high = row[name]["accuracy_ci"]
            assert low <= row[name]["accuracy"] <= high and 0 <= row[name]["ece"] <= 0.5
        assert row["ece_change"] == pytest.approx(row["more"]["ece"] - row["bradley_terry"]["ece"])
    stamp = (tmp_path / "models" / "more" / "done.json").stat().st_mtime_ns
    second = bench.main(["--tiny", "--work", str(tmp_path)])
    assert second["comparison"] == first["comparison"]
    assert (tmp_path / "models" / "more" / "done.json").stat().st_mtime_ns == stamp
    assert "## ECE change, MORE − Bradley-Terry (paired bootstrap)" in (tmp_path / "results.md").read_text()
