"""``rewardlab data strength | curate | review-queue`` end to end on tiny saved reward models whose
scores are known: three members are one model with its head scaled by 1, 2 and 3 (margins d, 2d, 3d),
so every pair's strength and every decision follows from that one model's own scores."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.curation import peer_halves
from rewardlab.data import load_preferences
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)
WORDS = ["kind", "helpful", "rude", "wrong", "clear", "vague", "honest", "false", "polite", "curt"]
PAIRS = 40


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """40 pairs with fields rewardlab does not read (``meta``, ``note``) and one graded ``strength``."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    rows = []
    for i in range(PAIRS):
        row = {
            "id": f"p{i}",
            "prompt": f"question {i}: " + " ".join(rng.choices(WORDS, k=3)),
            "chosen": " ".join(rng.choices(WORDS, k=6)),
            "rejected": " ".join(rng.choices(WORDS, k=6)),
            "meta": {"source": "test", "n": i},
            "note": f"row {i}",
            "subset": "odd" if i % 2 else "even",
        }
        rows.append(row | ({"strength": 0.8} if i == 0 else {}))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def models(tiny_encoder_dir, tmp_path_factory):
    """The base model scaled by 1, 2, 3 (with different biases, which margins cancel) and by −1."""
    root = tmp_path_factory.mktemp("members")
    torch.manual_seed(0)
    base = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    head = base.model.classifier
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    dirs = {}
    for name, scale in (("x1", 1.0), ("x2", 2.0), ("x3", 3.0), ("neg", -1.0)):
        with torch.no_grad():
            head.weight.copy_(scale * weight)
            head.bias.copy_(bias + scale)
        dirs[name] = base.save_pretrained(root / name)
    return dirs


@pytest.fixture(scope="module")
def base_margins(models, data_file):
    pairs = load_preferences(data_file).pairs
    model = RewardModel.from_pretrained(models["x1"])
    chosen = model.score([p.prompt for p in pairs], [p.chosen for p in pairs], precision="fp32")
    rejected = model.score([p.prompt for p in pairs], [p.rejected for p in pairs], precision="fp32")
    return np.array(chosen) - np.array(rejected)


def run(*args: str):
    return CliRunner().invoke(app, [*map(str, args), "--precision", "fp32"])


def run_plain(*args: str):
    return CliRunner().invoke(app, list(map(str, args)))


def members(models):
    return [models["x1"], models["x2"], models["x3"]]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_strength_is_the_members_mean_and_spread(models, data_file, base_margins, tmp_path):
    """Margins d, 2d, 3d: μ = 2d, σ = |d|·sqrt(((−1)² + 0 + 1²)/3) = |d|·sqrt(2/3)."""
    out = tmp_path / "strength.jsonl"
    result = run("data", "strength", data_file, "--models", *members(models), "--output", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(PAIRS)]
    assert [r["strength_mean"] for r in rows] == pytest.approx((2 * base_margins).tolist(), abs=1e-5)
    assert [r["strength_std"] for r in rows] == pytest.approx((abs(base_margins) * math.sqrt(2 / 3)).tolist(), abs=1e-5)
    summary = json.loads((tmp_path / "strength.summary.json").read_text())
    assert summary["pairs"] == PAIRS and summary["negative_strength"] == int((base_margins < 0).sum())
    assert json.loads(result.stdout)["negative_strength"] == summary["negative_strength"]


def threshold_flagging(margins: np.ndarray, count: int) -> float:
    """The threshold that flags exactly the ``count`` pairs of lowest μ = 2d."""
    mu = np.sort(2 * margins)
    return -float(mu[count - 1] + mu[count]) / 2


def test_flip_keeps_every_field_adds_provenance_and_trains(models, data_file, base_margins, tmp_path, tiny_encoder_dir):
    threshold = threshold_flagging(base_margins, 6)
    expected = set(np.flatnonzero(2 * base_margins < -threshold).tolist())
    assert len(expected) == 6
    out, report = tmp_path / "curated.jsonl", tmp_path / "report"
    args = ["--method", "flip", "--threshold", threshold, "--output", out, "--report", report]
    result = run("data", "curate", data_file, "--models", *members(models), *args)
    assert result.exit_code == 0, result.output
    assert "40 pairs: 34 kept, 6 flipped, 0 softened, 0 dropped; 40 written" in result.output
    original = read_jsonl(data_file)
    curated = read_jsonl(out)
    assert len(curated) == PAIRS and read_jsonl(tmp_path / "curated.dropped.jsonl") == []
    for i, (before, after) in enumerate(zip(original, curated, strict=True)):
        flipped = i in expected
        assert after["action"] == ("flipped" if flipped else "kept")
        assert after["original_label"] == (0.0 if flipped else 1.0)
        assert after["strength_mean"] == pytest.approx(2 * base_margins[i], abs=1e-5)
        assert 0.5 <= after["strength"] <= 1
        swapped = {"chosen": before["rejected"], "rejected": before["chosen"]} if flipped else {}
        kept = {k: v for k, v in (before | swapped).items() if k != "strength"}
        assert {k: after[k] for k in kept} == kept  # every original field, as it was (or swapped)
    assert curated[0]["original_strength"] == 0.8
    counts = json.loads((tmp_path / "curated.counts.json").read_text())
    assert (counts["flipped"], counts["kept"], counts["dropped"], counts["written"]) == (6, 34, 0, 40)
    assert sum(c["flipped"] for c in counts["by_subset"].values()) == 6
    md = (report / "curation.md").read_text()
    assert md.count("**flipped**") == 6 and "data:image/png;base64" in (report / "curation.html").read_text()

    # the curated file is training data: its strengths feed the soft objective
    loaded = load_preferences(out)
    assert len(loaded.pairs) == PAIRS and all(0.5 <= p.strength <= 1 for p in loaded.pairs)
    trained = rewardlab.train(
        data=str(out), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", objective="soft_bradley_terry",
        precision="fp32", progress=False, num_threads=1, max_steps=2, batch_size=8,
    )  # fmt: skip
    assert trained.steps == 2


def test_drop_writes_every_dropped_pair_to_its_own_file(models, data_file, base_margins, tmp_path):
    threshold = threshold_flagging(base_margins, 4)
    expected = np.flatnonzero(2 * base_margins < -threshold).tolist()
    out = tmp_path / "curated.jsonl"
    result = run("data", "curate", data_file, "--models", *members(models), "--method", "drop",
                 "--threshold", threshold, "--output", out, "--dropped", tmp_path / "removed.jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 dropped; 36 written" in result.output
    dropped = read_jsonl(tmp_path / "removed.jsonl")
    assert [r["id"] for r in dropped] == [f"p{i}" for i in expected]
    assert all(r["action"] == "dropped" for r in dropped)
    ids = {r["id"] for r in read_jsonl(out)} | {r["id"] for r in dropped}
    assert ids == {f"p{i}" for i in range(PAIRS)}  # nothing lost


def test_soft_keeps_every_pair_with_the_ensemble_label(models, data_file, base_margins, tmp_path):
    """w = ½: s = ½ + ½·mean(σ(d), σ(2d), σ(3d)) for each pair, none reversed."""
    out = tmp_path / "soft.jsonl"
    result = run("data", "curate", data_file, "--models", *members(models), "--method", "soft", "--output", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    p = np.mean([1 / (1 + np.exp(-k * base_margins)) for k in (1, 2, 3)], axis=0)
    assert [r["strength"] for r in rows] == pytest.approx((0.5 + 0.5 * p).tolist(), abs=1e-5)
    assert {r["action"] for r in rows} == {"softened"} and all(r["original_label"] == 1.0 for r in rows)


def test_peer_review_drops_what_the_peer_doubts(models, data_file, base_margins, tmp_path):
    """A = x1 trains on half 0, B = neg (margins −d) on half 1: a half-0 pair is judged by B (−d), a
    half-1 pair by A (d); flagged where the judge's margin < −0.01. With --curriculum the kept pairs
    come out by the judge's margin, largest first."""
    halves = peer_halves(load_preferences(data_file).pairs, seed=0)
    judged = np.where(halves == 0, -base_margins, base_margins)
    out = tmp_path / "peer.jsonl"
    result = run("data", "curate", data_file, "--models", models["x1"], models["neg"], "--method", "peer-review",
                 "--threshold", 0.01, "--curriculum", "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    dropped = [r["id"] for r in read_jsonl(tmp_path / "peer.dropped.jsonl")]
    assert dropped == [f"p{i}" for i in np.flatnonzero(judged < -0.01)]
    kept = read_jsonl(out)
    assert [r["strength_mean"] for r in kept] == sorted((r["strength_mean"] for r in kept), reverse=True)
    assert len(kept) + len(dropped) == PAIRS
    three = run("data", "curate", data_file, "--models", *members(models), "--method", "peer-review", "--output", out)
    assert three.exit_code == 2 and "exactly two models" in three.output


def test_halves_split_the_rows_as_peer_review_judges_them(data_file, tmp_path):
    result = run_plain("data", "halves", data_file, "--output", tmp_path / "halves", "--seed", 3)
    assert result.exit_code == 0, result.output
    halves = peer_halves(load_preferences(data_file).pairs, seed=3)
    for k in (0, 1):
        rows = read_jsonl(tmp_path / "halves" / f"half-{k}.jsonl")
        assert [r["id"] for r in rows] == [f"p{i}" for i in np.flatnonzero(halves == k)] and "meta" in rows[0]


def test_review_queue_puts_the_most_doubted_first(models, data_file, base_margins, tmp_path):
    out, gold = tmp_path / "queue.jsonl", tmp_path / "gold.jsonl"
    result = run("data", "review-queue", data_file, "--models", *members(models), "--budget", 5, "--output", out)
    assert result.exit_code == 0, result.output
    queue = read_jsonl(out)
    assert [r["id"] for r in queue] == [f"p{i}" for i in np.argsort(base_margins)[:5]]
    assert [r["review_rank"] for r in queue] == [1, 2, 3, 4, 5] and all("meta" in r for r in queue)
    gold.write_text(data_file.read_text())
    with_gold = run("data", "review-queue", data_file, "--models", *members(models), "--budget", 5,
                    "--gold", gold, "--output", out)  # fmt: skip
    assert with_gold.exit_code == 0, with_gold.output
    assert len(read_jsonl(out)) == 5


def test_files_are_atomic_and_mistakes_are_one_line(models, data_file, tmp_path):
    out = tmp_path / "curated.jsonl"
    out.write_text("old\n")
    bad = run("data", "curate", data_file, "--models", models["x1"], tmp_path / "nowhere", "--method", "flip",
              "--output", out)  # fmt: skip
    assert bad.exit_code == 2 and "no such reward model folder" in bad.output and "Traceback" not in bad.output
    assert out.read_text() == "old\n"  # a failed run leaves the old file whole
    ok = run("data", "curate", data_file, "--models", *members(models), "--method", "flip", "--output", out)
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "curated.counts.json",
        "curated.dropped.jsonl",
        "curated.jsonl",
    ]

    method = run("data", "curate", data_file, "--models", *members(models), "--method", "flop", "--output", out)
    assert method.exit_code == 2 and "--method must be one of" in method.output
    suffix = run("data", "curate", data_file, "--models", *members(models), "--method", "flip", "--output", "x.csv")
    assert suffix.exit_code == 2 and "ending in .jsonl" in suffix.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(data_file.read_text().splitlines()[0] + "\n" + json.dumps({"prompt": "q", "chosen": ""}) + "\n")
    row = run("data", "strength", broken, "--models", *members(models))
    assert row.exit_code == 2 and "broken.jsonl:2" in row.output and '"chosen"' in row.output
    skipped = run("data", "curate", broken, "--models", *members(models), "--method", "drop", "--output", out,
                  "--skip-bad-rows")  # fmt: skip
    assert skipped.exit_code == 0, skipped.output
    assert "1 pairs: 1 kept" in skipped.output and "1 unreadable rows skipped" in skipped.output  # counted, not lost
    assert json.loads((tmp_path / "curated.counts.json").read_text())["unreadable_rows"] == 1
