"""RewardMATH-style evaluation (``evaluate/rewardmath.py``, ``--format rewardmath``) against hand-computed
values, and generated one-to-many rows evaluated end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.evaluate.rewardbench import BestOfNRecord
from rewardlab.evaluate.rewardmath import reciprocal_rank, rewardmath_eval


def test_reciprocal_rank_examples():
    assert reciprocal_rank(3, [1, 2]) == 1.0
    assert reciprocal_rank(3, [4, 1]) == 0.5
    assert reciprocal_rank(3, [3, 1]) == pytest.approx(1 / 1.5)


def test_rewardmath_hand_computed():
    """Problem A: correct 3 against (1, 2): above all (1), rank 1, pairs won 2 of 2. Problem B: correct 1
    against (2, 0): not above all (0), rank 2, pairs won 1 of 2. Accuracy 1/2, MRR (1 + 1/2)/2 = 0.75,
    pairwise 3/4: the pairwise number hides that B's correct solution would lose a best-of-3."""
    records = [BestOfNRecord("A", ("a",), ("x", "y"), subset="s"), BestOfNRecord("B", ("b",), ("x", "y"), subset="t")]
    result = rewardmath_eval(records, [([3.0], [1.0, 2.0]), ([1.0], [2.0, 0.0])])
    assert result.accuracy.accuracy == 0.5 and result.mrr == 0.75 and result.pairwise.accuracy == 0.75
    assert result.pairwise.n == 4 and result.problems == 2 and result.incorrect_per_problem == 2
    assert result.per_subset["t"]["mrr"] == 0.5 and result.per_subset["s"]["accuracy"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="one correct solution"):
        rewardmath_eval([BestOfNRecord("A", ("a", "b"), ("x",))], [([1.0, 2.0], [0.0])])


def test_generated_rows_evaluate_end_to_end(tiny_encoder_dir, tmp_path):
    runner = CliRunner()
    rows = tmp_path / "rewardmath.jsonl"
    made = runner.invoke(app, ["data", "chains", "--output", str(rows), "--count", "5", "--incorrect", "4"])
    assert made.exit_code == 0, made.output
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(written) == 5 and all(len(set(r["rejected"])) == 4 and r["chosen"] not in r["rejected"] for r in written)
    from rewardlab.models.reward_model import RewardModel

    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=96).save_pretrained(tmp_path / "rm")
    report = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(model), str(rows), "--format", "rewardmath", "--report", str(report)])
    assert result.exit_code == 0, result.output
    saved = json.loads((report / "rewardmath.json").read_text())
    assert saved["problems"] == 5 and saved["pairwise"]["n"] == 20 and 0.2 <= saved["mrr"] <= 1.0
    assert "one-to-many accuracy" in (report / "rewardmath.md").read_text()
