"""Faults in a run's folder: a kill at every rename of a save, ``--overwrite`` with a mistake in it, a
taken folder, leftovers of killed writes, an unfinished model. Every case ends in a one-line error or
the result of an uninterrupted run, and no file a user kept in the run folder is lost.

A run is killed by forking this process (torch and the tiny model already loaded, so a run takes
well under a second) with ``os.replace``/``os.rename`` patched to ``os._exit`` at their Nth call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import synthetic_pairs, write_jsonl
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

from rewardlab.atomic import MANIFEST, atomic_directory, clean_leftovers, write_text_atomic
from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel, UnfinishedModelWarning
from rewardlab.runs.folder import claim_run_folder
from rewardlab.runs.metrics import MetricLogger
from rewardlab.training.config import TrainConfig
from rewardlab.training.trainer import RULES

KILLED = 77
OPTIONS = ["max_steps=4", "save_every=2", "eval_every=1", "batch_size=8", "optim.lr=5e-3", "log_every=1"]
OPTIONS += ["precision=fp32", "num_threads=1", "progress=false", "model.max_length=32"]
USER_FILES = {"notes.txt": "mine", "model/NOTES.md": "my notes", "checkpoint/mine.txt": "x", "report/plot.png": "p"}


def run_forked(args: list[str], log: Path, kill_at: int | None = None) -> int:
    """Exit code of ``rewardlab *args`` run in a fork; ``log`` gets its output and every rename's target.
    With ``kill_at``, the process dies just before its ``kill_at``-th rename, as a kill -9 would."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            # the parent's OpenMP pool does not survive a fork: a parallel op in the child would wait on it forever
            torch.set_num_threads(1)
            calls: list[str] = []

            def deadly(real):
                def rename(src, dst, *rest, **kw):
                    calls.append(str(dst))
                    if len(calls) == kill_at:
                        log.write_text(json.dumps({"calls": calls, "output": ""}))
                        os._exit(KILLED)
                    return real(src, dst, *rest, **kw)

                return rename

            os.replace, os.rename = deadly(os.replace), deadly(os.rename)
            result = CliRunner().invoke(app, args)
            log.write_text(json.dumps({"calls": calls, "output": result.output}))
            code = result.exit_code
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def train_args(data: Path, backbone: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--backbone", str(backbone), "--output", str(out), *OPTIONS, *extra]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def metric_rows(run: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("split"), r["loss"]) for r in rows]


def leftovers(run: Path) -> list[str]:
    return [str(p.relative_to(run)) for p in run.rglob(".*") if p.name != MANIFEST]


def add_user_files(run: Path) -> None:
    for name, text in USER_FILES.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_jsonl(synthetic_pairs(60, seed=1), tmp_path_factory.mktemp("faults") / "pairs.jsonl")


@pytest.fixture(scope="module")
def reference(data, tiny_encoder_dir, tmp_path_factory) -> Path:
    """An uninterrupted run: the result every interrupted and resumed one must end with."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert run_forked(train_args(data, tiny_encoder_dir, out), out.parent / "log.json") == 0
    return out


def assert_same_result(run: Path, reference: Path, context: str) -> None:
    a, b = load_file(run / "model" / "model.safetensors"), load_file(reference / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), f"{context}: other weights than the reference"
    saved = json.loads((run / "model" / "config.json").read_text())["rewardlab"]
    assert saved == json.loads((reference / "model" / "config.json").read_text())["rewardlab"], context
    assert saved["status"] == "complete", context
    assert metric_rows(run) == metric_rows(reference), f"{context}: metrics.jsonl differs (each step once)"
    assert (
        json.loads((run / "report" / "eval.json").read_text())["overall"]
        == json.loads((reference / "report" / "eval.json").read_text())["overall"]
    ), context
    assert leftovers(run) == [], f"{context}: leftovers of the killed run"


def test_the_reference_run_keeps_a_best_that_is_not_its_last_step(reference):
    """The case where restoring the best weights matters: the final model is not the last step's."""
    last = load_file(reference / "checkpoint" / "model.safetensors")
    best = load_file(reference / "model" / "model.safetensors")
    assert any(not (last[k] == best[k]).all() for k in best)


@pytest.mark.parametrize("over_a_previous_run", [False, True])
def test_a_kill_at_every_rename_then_resume_gives_the_uninterrupted_result(
    over_a_previous_run, data, tiny_encoder_dir, reference, tmp_path
):
    """Killed before each rename of a run (config, best model, checkpoint swaps, user files carried
    over, final model, report), ``--resume`` exits 0 with the weights, statistics, metrics and
    report of the uninterrupted run, nothing left over, and the user's files in place.

    Before the fix a kill between the two renames of the final model swap left no ``model/``, and the
    resumed run saved the last step's weights; one in the checkpoint swap made ``--resume`` start
    again from step 0, ignoring ``.checkpoint.old``. Over a previous run (``--overwrite``), the
    previous run's own files go once the new one starts, and the user's stay."""
    run = tmp_path / "run"
    extra = ["--overwrite"] if over_a_previous_run else []
    counted = tmp_path / "count"
    if over_a_previous_run:
        shutil.copytree(reference, counted)
        add_user_files(counted)
    assert run_forked(train_args(data, tiny_encoder_dir, counted, *extra), tmp_path / "log.json") == 0
    calls = json.loads((tmp_path / "log.json").read_text())["calls"]
    final_model = max(i for i, target in enumerate(calls, 1) if target.endswith("/model"))
    names = {Path(target).name for target in calls}  # every kind of save step is among the kill points
    assert names >= {"config.yaml", "model", ".model.old", "checkpoint", ".checkpoint.old", "eval.json"}, calls
    folders = ("model", ".model.old", "checkpoint", ".checkpoint.old")
    report = [i for i, target in enumerate(calls, 1) if Path(target).parent.name == "report"]
    if over_a_previous_run:  # every rename, but one report file stands for the others
        points = [i for i in range(1, len(calls) + 1) if i not in report[1:]]
    else:  # a fresh run: its folder swaps
        points = [i for i, target in enumerate(calls, 1) if Path(target).name in folders]
    for kill_at in points:
        context = f"killed before rename {kill_at} of {len(calls)} ({Path(calls[kill_at - 1]).name})"
        shutil.rmtree(run, ignore_errors=True)
        if over_a_previous_run:
            shutil.copytree(reference, run)
            add_user_files(run)
        code = run_forked(train_args(data, tiny_encoder_dir, run, *extra), tmp_path / "log.json", kill_at)
        assert code == KILLED, context
        saved = run / "model" / "config.json"
        if saved.exists():  # an unfinished model says so until the final save
            status = json.loads(saved.read_text())["rewardlab"]["status"]
            assert status == ("complete" if kill_at > final_model else "unfinished"), context
        resumed = run_forked(train_args(data, tiny_encoder_dir, run, "--resume"), tmp_path / "resumed.json")
        assert resumed == 0, f"{context}: {json.loads((tmp_path / 'resumed.json').read_text())['output']}"
        assert_same_result(run, reference, context)
        if over_a_previous_run:
            assert all((run / name).read_text() == text for name, text in USER_FILES.items()), context


@pytest.mark.parametrize("mistake", [["--data", "missing.jsonl"], ["--backbone", "no-such-model-dir"]])
def test_overwrite_with_a_mistake_leaves_the_previous_run_whole(mistake, data, tiny_encoder_dir, reference, tmp_path):
    """The bug: ``--overwrite`` deleted the previous run before checking anything, so a typo in
    ``--data`` or ``--backbone`` exited 2 and left only ``config.yaml``."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    add_user_files(run)
    before = tree(run)
    args = train_args(data, tiny_encoder_dir, run, "--overwrite")
    args[args.index(mistake[0]) + 1] = str(tmp_path / mistake[1])
    assert run_forked(args, tmp_path / "log.json") == 2
    output = json.loads((tmp_path / "log.json").read_text())["output"]
    assert len([line for line in output.splitlines() if line.startswith("error: ")]) == 1
    assert "Traceback" not in output
    assert tree(run) == before


def test_overwrite_removes_only_what_the_previous_run_wrote(data, tiny_encoder_dir, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    add_user_files(run)
    (run / "model" / "extra").mkdir()
    (run / "model" / "extra" / "a.txt").write_text("deep")
    code = run_forked(train_args(data, tiny_encoder_dir, run, "--overwrite", "max_steps=2"), tmp_path / "log.json")
    assert code == 0
    assert all((run / name).read_text() == text for name, text in USER_FILES.items())
    assert (run / "model" / "extra" / "a.txt").read_text() == "deep"
    assert max(step for step, _, _ in metric_rows(run)) == 2, "the previous run's metrics are gone"
    assert json.loads((run / "checkpoint" / "state.json").read_text())["train_state"]["step"] == 2
    AutoModelForSequenceClassification.from_pretrained(run / "model")  # user files do not get in the way


def test_a_non_empty_folder_without_a_checkpoint_is_refused(data, tiny_encoder_dir, tmp_path):
    """The bug: ``train`` went ahead in it, overwriting the user's config.yaml and appending to metrics.jsonl."""
    run = tmp_path / "run"
    add_user_files(run)
    (run / "config.yaml").write_text("my: settings\n")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    before = tree(run)
    assert run_forked(train_args(data, tiny_encoder_dir, run), tmp_path / "log.json") == 2
    message = " ".join(json.loads((tmp_path / "log.json").read_text())["output"].split())
    assert str(run) in message.replace(" ", "") or str(run) in message
    assert "--resume" in message and "--overwrite" in message
    assert tree(run) == before
    (run / "config.yaml").unlink()
    assert run_forked(train_args(data, tiny_encoder_dir, run, "--resume"), tmp_path / "log.json") == 2
    assert "holds no run to --resume" in " ".join(json.loads((tmp_path / "log.json").read_text())["output"].split())


def test_an_unfinished_model_warns_when_loaded_and_still_loads_in_transformers(reference, tmp_path):
    model = RewardModel.from_pretrained(reference / "model")
    model.info.status = "unfinished"
    model.save_pretrained(tmp_path / "run" / "model")
    with pytest.warns(UnfinishedModelWarning, match=r"did not finish .* --resume") as caught:
        RewardModel.from_pretrained(tmp_path / "run" / "model")
    assert str(tmp_path / "run" / "model") in str(caught[0].message)
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RewardModel.from_pretrained(reference / "model")  # a finished one: no warning


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_leftovers_of_killed_writes_are_cleaned_when_a_run_starts(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    gone = dead_pid()
    for name in (
        f".model.{gone}.abcd1234.tmp",
        f".checkpoint.{gone}.zz_yy123.tmp",
        ".model.old",
        ".model.q1w2e3r4.tmp",
    ):
        (run / name).mkdir()
        (run / name / "model.safetensors").write_text("half")
    (run / "report").mkdir()
    (run / "report" / f".eval.json.{gone}.abcdefgh.tmp").write_text("half")
    (run / f".metrics.jsonl.{os.getppid()}.abcdefgh.tmp").write_text("a running writer's")
    (run / "report" / "eval.json").write_text("{}")
    TrainConfig().save(run / "config.yaml")
    claim_run_folder(run, TrainConfig(), RULES, resume=True, overwrite=False)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == sorted(
        [
            "config.yaml",
            "model",
            "model/config.json",
            "report",
            "report/eval.json",
            f".metrics.jsonl.{os.getppid()}.abcdefgh.tmp",
        ]
    )


def test_a_swap_killed_between_its_renames_is_rolled_back_to_the_last_complete_folder(tmp_path):
    target = tmp_path / "checkpoint"
    with atomic_directory(target) as tmp:
        (tmp / "state.json").write_text("1")
    (target / "mine.txt").write_text("mine")
    os.replace(target, tmp_path / ".checkpoint.old")  # killed here: the new one was complete but not in place
    (tmp_path / f".checkpoint.{dead_pid()}.abcdefgh.tmp").mkdir()
    clean_leftovers(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert (target / "state.json").read_text() == "1" and (target / "mine.txt").read_text() == "mine"
    with atomic_directory(target) as tmp:
        (tmp / "state.json").write_text("2")
    assert {p.name for p in target.iterdir()} == {"state.json", "mine.txt", MANIFEST}
    assert (target / "state.json").read_text() == "2"


def test_a_file_write_cleans_the_temporaries_of_earlier_killed_writes(tmp_path):
    gone = f".scored.jsonl.{dead_pid()}.abcdefgh.tmp"
    for name in (gone, ".scored.jsonl.abcdefgh.tmp", ".other.jsonl.abcdefgh.tmp"):
        (tmp_path / name).write_text("half")
    write_text_atomic(tmp_path / "scored.jsonl", "{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.jsonl.abcdefgh.tmp", "scored.jsonl"]


def test_resumed_metrics_keep_the_rows_up_to_the_checkpoint_and_drop_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1}\n{"step": 2, "loss": 2}\n{"step": 3, "loss": 3}\n{"step": 4, "lo')
    MetricLogger(path, resume_step=2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
