"""``rewardlab cross-dataset``: a reward per source, tested on every source's test split (issue 29).

The summary arithmetic is checked on exact values; the study itself on tiny models and two tiny
synthetic sources: the matrix's shape, that a diagonal cell is exactly its source's held-out test
split (the pairs its run did not train on, with the run's own held-out accuracy), resume, errors,
and a DPO implicit-reward row from a tiny policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic import synthetic_pairs, write_jsonl
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.split import content_key
from rewardlab.evaluate.matrix_report import MatrixCell, MatrixRow, matrix_summary, render_matrix
from rewardlab.policy.cross_dataset import (
    CrossDatasetConfig,
    held_out_pairs,
    parse_sources,
    reward_model_config,
    run_cross_dataset,
)
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunExists

torch.set_num_threads(1)

FAST = [
    "precision=fp32",
    "progress=false",
    "num_threads=1",
    "model.max_length=32",
    "max_steps=3",
    "eval_every=3",
    "batch_size=8",
]


def test_matrix_summary_exact_values() -> None:
    """Row ``a`` (trained on a): 8 of 8 on a, 3 of 4 on b, 1.5 of 2 on c (a score tie counts 1/2).

    Accuracies 1.0, 0.75, 0.75; in-distribution 1.0; off-diagonal mean (0.75 + 0.75) / 2 = 0.75.
    Wilson for 8 of 8, z = 1.959964: z²/n = 3.841459/8 = 0.480182, centre = (1 + 0.240091) / 1.480182
    = 0.837797, half = z / 1.480182 · √(z² / 4n²) = 1.324138 · 0.122498 = 0.162204, so 0.675593–1.
    Row ``dpo:b`` (trained on b): 0 of 8 on a (Wilson 0–0.324407, the mirror of 8 of 8), 2 of 4 on b,
    4 of 4 on c: off-diagonal mean (0 + 1) / 2 = 0.5, in-distribution 0.5.
    """
    rows = [MatrixRow("a", "a"), MatrixRow("dpo:b", "b", kind="dpo-implicit")]
    cells = [
        MatrixCell("a", "a", 8, 8),
        MatrixCell("a", "b", 3, 4),
        MatrixCell("a", "c", 1.5, 2),
        MatrixCell("dpo:b", "a", 0, 8),
        MatrixCell("dpo:b", "b", 2, 4),
        MatrixCell("dpo:b", "c", 4, 4),
    ]
    summary = matrix_summary(rows, ["a", "b", "c"], cells)
    a, dpo = summary["rows"]
    assert (a["in_distribution"], a["off_diagonal_mean"]) == (1.0, 0.75)
    assert (dpo["in_distribution"], dpo["off_diagonal_mean"], dpo["kind"]) == (0.5, 0.5, "dpo-implicit")
    top = summary["cells"]["a"]["a"]
    assert top["in_distribution"] and top["ci_low"] == pytest.approx(0.675593, abs=1e-6) and top["ci_high"] == 1.0
    assert summary["cells"]["dpo:b"]["a"]["ci_high"] == pytest.approx(1 - 0.675593, abs=1e-6)
    assert summary["cells"]["a"]["c"]["accuracy"] == 0.75
    assert [c for c, v in summary["cells"]["dpo:b"].items() if v["in_distribution"]] == ["b"]
    table = render_matrix(summary)
    assert "| a | **1.000 (0.676–1.000, n=8)** | 0.750 (" in table and table.rstrip().endswith("| 0.500 |")
    with pytest.raises(ValueError, match="no cell for a/d"):
        matrix_summary(rows[:1], ["a", "d"], cells)


def test_sources_are_names_or_name_equals_path() -> None:
    sources = parse_sources("hh-harmless, mine=/tmp/x.jsonl")
    assert [(s.name, s.data) for s in sources] == [("hh-harmless", "hh-harmless"), ("mine", "/tmp/x.jsonl")]
    with pytest.raises(ValueError, match="known: hh-harmless, ultrafeedback, tulu1, finegrained"):
        parse_sources("hh-harmless,ultrafeedbak")
    with pytest.raises(ValueError, match="twice"):
        parse_sources("tulu1,tulu1")


@pytest.fixture
def two_sources(tmp_path: Path) -> str:
    a = write_jsonl(synthetic_pairs(40, seed=1), tmp_path / "a.jsonl")
    b = write_jsonl(synthetic_pairs(30, seed=2, words=4), tmp_path / "b.jsonl")
    return f"a={a},b={b}"


def test_matrix_shape_diagonal_is_the_runs_own_test_split_and_resume(
    tiny_encoder_dir: Path, two_sources: str, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    overrides = [f"model.backbone={tiny_encoder_dir}", *FAST]
    study = CrossDatasetConfig(parse_sources(two_sources), out, overrides)
    summary, markdown = run_cross_dataset(study, say=lambda _: None)
    assert summary["columns"] == ["a", "b"] and [r["label"] for r in summary["rows"]] == ["a", "b"]
    assert set(summary["cells"]["a"]) == {"a", "b"} and set(summary["cells"]["b"]) == {"a", "b"}
    for source in study.sources:
        config = reward_model_config(study, source)
        test = held_out_pairs(config, say=lambda _: None)
        train = load_split(config.data, say=lambda _: None).splits.train
        assert test and not {content_key(p) for p in test} & {content_key(p) for p in train}
        run_report = json.loads((out / "reward-models" / source.name / "report" / "eval.json").read_text())
        diagonal = summary["cells"][source.name][source.name]
        assert diagonal["in_distribution"] and diagonal["n"] == len(test) == run_report["overall"]["n"]
        assert diagonal["accuracy"] == pytest.approx(run_report["overall"]["accuracy"], abs=1e-12)
        other = next(s for s in study.sources if s.name != source.name)
        other_test = held_out_pairs(reward_model_config(study, other), say=lambda _: None)
        assert summary["cells"][source.name][other.name]["n"] == len(other_test)
    assert json.loads((out / "cross_dataset.json").read_text())["cells"] == summary["cells"]
    assert (out / "cross_dataset.md").read_text() == markdown and "**" in markdown

    model_file = out / "reward-models" / "a" / "model" / "model.safetensors"
    before = model_file.stat().st_mtime_ns
    with pytest.raises(RunExists, match="--resume"):
        run_cross_dataset(study, say=lambda _: None)
    cell = out / "cells" / "a" / "b.json"
    cell.unlink()  # one cell lost: --resume scores it again, and retrains nothing
    again, _ = run_cross_dataset(study, resume=True, say=lambda _: None)
    assert model_file.stat().st_mtime_ns == before and cell.is_file()
    assert again["cells"] == summary["cells"]
    changed = CrossDatasetConfig(study.sources, out, [*overrides, "seed=1"])
    with pytest.raises(RunExists, match="other settings"):
        run_cross_dataset(changed, resume=True, say=lambda _: None)
    threads = CrossDatasetConfig(study.sources, out, [*overrides, "num_threads=1", "progress=false"])
    assert run_cross_dataset(threads, resume=True, say=lambda _: None)[0]["cells"] == summary["cells"]


def test_dpo_rows_score_the_implicit_reward_of_a_tiny_policy(
    tiny_encoder_dir: Path, tiny_decoder_dir: Path, two_sources: str, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    dpo = ["--dpo", "--dpo-set", f"policy={tiny_decoder_dir}"]
    for item in ("train.steps=2", "train.batch_pairs=8", "train.precision=fp32", "num_threads=1", "progress=false"):
        dpo += ["--dpo-set", item]
    args = [
        "cross-dataset",
        f"model.backbone={tiny_encoder_dir}",
        *FAST,
        "--sources",
        two_sources,
        "--output",
        str(out),
    ]
    shown = CliRunner().invoke(app, [*args, *dpo], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    summary = json.loads((out / "cross_dataset.json").read_text())
    assert [r["label"] for r in summary["rows"]] == ["a", "dpo:a", "b", "dpo:b"]
    for name in ("a", "b"):
        report = json.loads((out / "dpo" / name / "report.json").read_text())
        held_out = report["held_out"]["implicit_accuracy"]  # the DPO run's own test split, its own code
        diagonal = summary["cells"][f"dpo:{name}"][name]
        assert diagonal["in_distribution"] and diagonal["n"] == held_out["n"]
        assert diagonal["accuracy"] == pytest.approx(held_out["accuracy"], abs=1e-12)
    assert "dpo:a" in shown.output and "off-diagonal mean" in shown.output

    plain = tmp_path / "plain"  # a study without DPO rows gets them by --resume, its reward models kept
    first = CliRunner().invoke(app, [*args[:-1], str(plain)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    kept = (plain / "reward-models" / "a" / "model" / "model.safetensors").stat().st_mtime_ns
    added = CliRunner().invoke(app, [*args[:-1], str(plain), "--resume", *dpo], catch_exceptions=False)
    assert added.exit_code == 0, added.output
    rows = [r["label"] for r in json.loads((plain / "cross_dataset.json").read_text())["rows"]]
    assert rows == ["a", "dpo:a", "b", "dpo:b"]
    assert (plain / "reward-models" / "a" / "model" / "model.safetensors").stat().st_mtime_ns == kept
    dropped = CliRunner().invoke(app, [*args[:-1], str(plain), "--resume"])  # taking rows away is a change
    assert dropped.exit_code != 0 and "other settings" in dropped.output

    clash = CliRunner().invoke(app, [*args, "--overwrite", "--dpo", "--dpo-set", "data.split_seed=3"])
    assert clash.exit_code == 2 and "same test pairs" in clash.output
