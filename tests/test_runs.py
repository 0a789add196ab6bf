"""The run plumbing both trainers share (``rewardlab.runs``): config problems, the run folder and what a
resumed run may change, metric logging and trackers, load-and-split, and progress off a terminal."""

from __future__ import annotations

import io
import json
from typing import ClassVar

import pytest
from accelerate import tracking
from synthetic import synthetic_pairs, write_jsonl
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.policy.run_config import DPORunConfig, load_dpo_config
from rewardlab.progress import progress_bar, progress_line
from rewardlab.runs.config import ConfigError, RunConfig
from rewardlab.runs.data import SplitDataConfig, load_split
from rewardlab.runs.folder import RunExists, RunRules, changed_options, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.runs.trackers import available_trackers, report_to_problems, tracker_names
from rewardlab.training.config import TrainConfig, load_config

FAST = {"precision": "fp32", "progress": False, "num_threads": 1, "model.max_length": 32}


class RecordingTracker:
    """Stands in for an accelerate tracker: records what a run sends it."""

    name = "tensorboard"
    requires_logging_directory = True
    runs: ClassVar[list[RecordingTracker]] = []

    def __init__(self, project: str, logging_dir) -> None:
        self.project, self.logging_dir = project, logging_dir
        self.logged: list[tuple[int, dict]] = []
        self.options: dict = {}
        self.finished = False
        RecordingTracker.runs.append(self)

    def start(self) -> None:
        pass

    def store_init_configuration(self, values: dict) -> None:
        self.options = values

    def log(self, values: dict, step: int | None = None) -> None:
        self.logged.append((step, values))

    def finish(self) -> None:
        self.finished = True


def test_both_run_configs_list_their_problems_by_one_name():
    for config in (TrainConfig(), DPORunConfig()):
        assert isinstance(config, RunConfig) and config.problems() == []
        assert not hasattr(config, "validate")
    config = load_dpo_config(None, ["train.steps=3"])
    config.train.steps = 0
    with pytest.raises(ConfigError, match=r"train\.steps must be >= 1 \(got 0\)"):
        config.check()


def test_a_resumed_run_names_every_option_that_differs(tmp_path):
    before = load_config(None, ["optim.lr=2e-5", "objective.args.label_smoothing=0.1", "log_every=5"])
    before.save(tmp_path / "config.yaml")
    now = load_config(None, ["optim.lr=1e-3", "batch_size=4", "log_every=7", "progress=false"])
    changed = changed_options(tmp_path / "config.yaml", now, {"log_every", "progress"}.__contains__)
    assert changed == [
        "objective.args: {'label_smoothing': 0.1} -> {}",
        "optim.lr: 2e-05 -> 0.001",
        "batch_size: 8 -> 4",
    ]


def test_claim_refuses_a_taken_folder_and_clears_only_what_a_run_owns(tmp_path):
    rules = RunRules(occupied=holds_anything, may_change=lambda key: True, owned=("model", "metrics.jsonl"))
    (tmp_path / "model").mkdir()
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunExists, match=r"holds no run to --resume .* pass --overwrite"):
        claim_run_folder(tmp_path, TrainConfig(), rules, resume=False, overwrite=False)
    TrainConfig().save(tmp_path / "config.yaml")
    with pytest.raises(RunExists, match="pass --resume to continue it, --overwrite to replace it"):
        claim_run_folder(tmp_path, TrainConfig(), rules, resume=False, overwrite=False)
    folder = claim_run_folder(tmp_path, TrainConfig(), rules, resume=True, overwrite=True)
    folder.start()
    assert not folder.resuming and (tmp_path / "model").exists()  # resuming never clears
    folder = claim_run_folder(tmp_path, TrainConfig(), rules, resume=False, overwrite=True)
    assert (tmp_path / "model").exists(), "claiming only checks: the previous run goes when the new one starts"
    folder.start()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notes.txt"]
    (tmp_path / "config.yaml").unlink()
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("{}")
    with pytest.raises(RunExists, match=r"config\.yaml: missing"):
        claim_run_folder(tmp_path, TrainConfig(), rules, resume=True, overwrite=False)


def test_train_resume_refuses_changed_options(tiny_encoder_dir, tmp_path):
    """The bug: ``train --resume`` with another learning rate went on silently (the DPO run refused)."""
    data = write_jsonl(synthetic_pairs(60, seed=1), tmp_path / "pairs.jsonl")
    args = ["train", "--data", str(data), "--backbone", str(tiny_encoder_dir), "--output", str(tmp_path / "run")]
    args += ["max_steps=2", "save_every=1", "precision=fp32", "progress=false", "num_threads=1", "model.max_length=32"]
    runner = CliRunner()
    first = runner.invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    changed = runner.invoke(app, [*args, "--resume", "optim.lr=1e-3", "batch_size=4"], catch_exceptions=False)
    assert changed.exit_code == 2
    text = " ".join(changed.output.split())
    assert "--resume needs the same ones: optim.lr: 2e-05 -> 0.001; batch_size: 8 -> 4" in text
    same = runner.invoke(app, [*args, "--resume", "log_every=1"], catch_exceptions=False)  # how it reports may change
    assert same.exit_code == 0, same.output


def test_tracker_names_and_problems(monkeypatch):
    assert tracker_names("none") == [] and tracker_names("") == []
    assert tracker_names(" TensorBoard, wandb,tensorboard") == ["tensorboard", "wandb"]
    monkeypatch.setattr("rewardlab.runs.trackers.available_trackers", lambda: {"wandb"})
    assert report_to_problems("wandb") == []
    assert report_to_problems("tensorboard,comet") == [
        "report_to: unknown tracker 'comet' (choose none or tensorboard, wandb, mlflow, trackio)",
        "report_to=tensorboard needs the tensorboard package: pip install 'rewardlab[tensorboard]'",
    ]


@pytest.mark.skipif("tensorboard" in available_trackers(), reason="tensorboard is installed")
@pytest.mark.parametrize("setting", ["report_to=tensorboard", "tensorboard=true"])
def test_a_missing_tracker_is_one_line_before_any_work(setting, tmp_path):
    """``tensorboard=true`` ended in a ModuleNotFoundError traceback after the data and model were loaded."""
    result = CliRunner().invoke(app, ["train", "--output", str(tmp_path / "run"), setting], catch_exceptions=False)
    assert result.exit_code == 2
    assert "report_to=tensorboard needs the tensorboard package: pip install 'rewardlab[tensorboard]'" in result.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError) as error:
        load_dpo_config(None, ["report_to=tensorboard"])
    assert len(error.value.problems) == 1


def test_metrics_reach_the_trackers_of_a_training_run(monkeypatch, tiny_encoder_dir, tmp_path):
    """With tensorboard taken as installed and its tracker class replaced by a recorder, a run sends
    every metrics.jsonl value to it, as ``split/name`` at its step, and finishes it."""
    monkeypatch.setattr(tracking, "_available_trackers", [tracking.LoggerType.TENSORBOARD])
    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "tensorboard", RecordingTracker)
    monkeypatch.setattr(RecordingTracker, "runs", [])
    data = write_jsonl(synthetic_pairs(60, seed=1), tmp_path / "pairs.jsonl")
    result = rewardlab.train(
        data=str(data),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        max_steps=4,
        log_every=2,
        eval_every=4,
        report_to="tensorboard",
        **FAST,
    )
    (tracker,) = RecordingTracker.runs
    assert tracker.logging_dir == result.output_dir / "tensorboard" and tracker.finished
    assert tracker.options["optim.lr"] == 2e-5 and tracker.options["max_steps"] == 4
    lines = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [
        (m["step"], {f"{m['split']}/{k}": v for k, v in m.items() if k not in ("step", "split")}) for m in lines
    ]
    assert tracker.logged == expected
    assert [step for step, _ in expected] == [2, 4, 4]


def test_metric_logger_starts_fresh_or_keeps_the_resumed_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tracker = RecordingTracker("p", tmp_path)
    with MetricLogger(path, trackers=[tracker]) as log:
        for step in (1, 2, 3):
            log.log(step, {"loss": step / 10}, "train")
        log.log(3, {"loss": 0.5})
    assert (
        tracker.finished and tracker.logged[0] == (1, {"train/loss": 0.1}) and tracker.logged[-1] == (3, {"loss": 0.5})
    )
    MetricLogger(path, resume_step=2)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 1, "split": "train", "loss": 0.1},
        {"step": 2, "split": "train", "loss": 0.2},
    ]
    MetricLogger(path)
    assert path.read_text() == ""


def test_load_split_is_the_split_every_run_uses(tmp_path):
    """100 pairs at the default fractions: 70 train, 10 validation, 20 test, disjoint, seeded."""
    path = write_jsonl(synthetic_pairs(100, seed=3), tmp_path / "pairs.jsonl")
    data = load_split(SplitDataConfig(path=str(path)))
    sizes = [len(data.part(name)) for name in ("all", "train", "validation", "test")]
    assert sizes == [100, 70, 10, 20]
    ids = [{id(p) for p in data.part(name)} for name in ("train", "validation", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = load_split(SplitDataConfig(path=str(path)))
    assert [p.chosen for p in again.part("test")] == [p.chosen for p in data.part("test")]
    with pytest.raises(ValueError, match="split must be all, train, validation or test"):
        data.part("dev")
    tiny = load_split(
        SplitDataConfig(
            path=str(write_jsonl(synthetic_pairs(2, seed=3), tmp_path / "two.jsonl")),
            validation_fraction=0.5,
            test_fraction=0.4,
        )
    )
    with pytest.raises(ValueError, match=r"no training pairs left after splitting off validation and test \(2 pairs\)"):
        tiny.require_training_pairs()


def test_progress_off_a_terminal_is_a_line_every_n_steps():
    """25 steps logged every 10: lines at 10, 20 and the end, with the latest fields and the time."""
    stream, now = io.StringIO(), iter(range(0, 1000, 7))
    with progress_bar(True, "training", 25, every=10, stream=stream, clock=lambda: next(now)) as advance:
        for step in range(1, 26):
            if step % 5 == 0:
                advance(0, loss=f"{1 / step:.4f}", **{"pairs/s": f"{step * 2.0:.1f}"})
            advance(1)
    assert stream.getvalue().splitlines() == [
        "training: 10/25 loss=0.1000 pairs/s=20.0 elapsed 0:00:07",
        "training: 20/25 loss=0.0500 pairs/s=40.0 elapsed 0:00:14",
        "training: 25/25 loss=0.0400 pairs/s=50.0 elapsed 0:00:21",
    ]
    assert progress_line("dpo", 3, 4, {}, 3725.9) == "dpo: 3/4 elapsed 1:02:05"
    quiet = io.StringIO()
    with progress_bar(False, "x", 3, stream=quiet) as advance:
        advance(3)
    assert quiet.getvalue() == ""
