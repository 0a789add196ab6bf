"""``rewardlab detect`` end to end on tiny models (make-data, tune, eval), its one-line errors, and the
benchmark's ``--tiny`` mode."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.detect.records import read_detection
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)  # two threads fight the machine's other work for two cores

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def invoke(*args: str):
    return CliRunner().invoke(app, ["detect", *args], env={"COLUMNS": "200"})


def test_make_data_tune_and_eval_end_to_end(tiny_decoder_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    answers = tmp_path / "qa.json"
    rows = [{"question": f"Question {i}?", "gold": f"First part {i}. Second part {i}."} for i in range(6)]
    answers.write_text(json.dumps(rows))
    data = tmp_path / "detect.jsonl"
    made = invoke(
        "make-data", str(answers), "--output", str(data), "--lm", str(tiny_decoder_dir), "--max-new-tokens", "6"
    )
    assert made.exit_code == 0, made.output
    records = read_detection(data)
    assert {r.source for r in records} <= {"human", "lm", "mixed"} and sum(r.source == "human" for r in records) == 6
    mixed = [r.text for r in records if r.source == "mixed"]
    assert mixed and all(t.startswith("First part") for t in mixed)  # the human opening is kept

    start = tmp_path / "start"
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32).save_pretrained(start)
    run = tmp_path / "run"
    tuned = invoke("tune", str(start), str(data), "--output", str(run), "--max-steps", "2", "--no-progress")
    assert tuned.exit_code == 0, tuned.output
    assert RewardModel.from_pretrained(run / "model").info.objective == "anchored_bradley_terry"
    scored = []
    real_score = RewardModel.score
    monkeypatch.setattr(RewardModel, "score", lambda self, *a, **k: scored.append(1) or real_score(self, *a, **k))
    taken = invoke("tune", str(start), str(data), "--output", str(run), "--max-steps", "2", "--no-progress")
    assert taken.exit_code == 2 and "already holds a run" in taken.output and not scored  # said before scoring
    monkeypatch.undo()

    result = tmp_path / "auroc.json"
    shown = invoke("eval", str(run / "model"), str(data), "--output", str(result), "--no-progress")
    assert shown.exit_code == 0, shown.output
    saved = json.loads(result.read_text())
    assert saved["lm vs human"]["negatives"] == 6
    assert 0.0 <= saved["lm vs human"]["ci_low"] <= saved["lm vs human"]["auroc"] <= saved["lm vs human"]["ci_high"]
    assert "lm vs human: AUROC" in shown.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_bad_rows_and_options_are_one_line_errors(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "q", "text": "t", "source": "human"}\n{"prompt": "q", "text": "t"}\n')
    shown = invoke("eval", str(tmp_path), str(data))
    assert shown.exit_code == 2
    assert f'{data}:2: field "source": is missing' in " ".join(shown.output.split())
    assert "Traceback" not in shown.output
    wrong = invoke("make-data", str(data), "--output", str(tmp_path / "out.txt"))
    assert wrong.exit_code == 2 and "give a name ending in .jsonl" in wrong.output


def test_benchmark_tiny_mode_runs_and_resumes(tmp_path):
    spec = importlib.util.spec_from_file_location("remodetect", BENCHMARKS / "remodetect.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["remodetect"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    results = module.main(["--tiny", "--work", str(tmp_path)])
    assert list(results["rows"]) == ["raw reward model", "tuned: LM ≻ human", "tuned: LM ≻ mixed ≻ human"]
    for row in results["rows"].values():
        assert 0.0 <= row["lm vs human"]["auroc"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text()) == results
    trained = (tmp_path / "tuned-mixed" / "model" / "model.safetensors").stat().st_mtime_ns
    assert module.main(["--tiny", "--work", str(tmp_path)])["rows"] == results["rows"]
    assert (tmp_path / "tuned-mixed" / "model" / "model.safetensors").stat().st_mtime_ns == trained
