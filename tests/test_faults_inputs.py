"""A fault suite for ``score``, ``eval`` and ``compare``: malformed inputs, and destinations that are
read-only, full, or of the wrong kind.

Every case ends in a correct result or in exit code 2 with one line naming the file (and line and
field, where there is one), and nothing a user had is lost: an existing output or report is
unchanged after a failure, and no temporary file is left beside it. Read-only and full disks are
real tmpfs mounts where this process may mount (tests run as root, which a read-only ``chmod`` does
not stop); where it may not, those tests skip and the patched-writer tests cover the same paths.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model(tiny_encoder_dir, tmp_path_factory) -> Path:
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=24).save_pretrained(
        tmp_path_factory.mktemp("faults") / "model"
    )


@pytest.fixture
def no_model_loads(monkeypatch) -> None:
    """Make loading a model fail loudly: a check that must come before the work is seen to."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the destination was checked")

    monkeypatch.setattr(RewardModel, "from_pretrained", refuse)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs (``size``), write ``files`` into it, then remount it read-only if asked."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "1m", files: dict[str, str] | None = None, read_only: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here; the patched-writer tests cover read-only and full disks")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the patched-writer tests cover this")
        mounted.append(target)
        for file_name, text in (files or {}).items():
            (target / file_name).write_text(text)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], capture_output=True)


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    """The one ``error:`` line of a failed command (exit code 2, no traceback)."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def scoring_rows(n: int = 3, words: int = 2) -> list[dict]:
    return [{"prompt": f"question {i}", "response": "word " * words + str(i)} for i in range(n)]


def pair_rows(n: int = 8, subsets: tuple[str, ...] = ()) -> list[dict]:
    rows = [{"prompt": f"q{i}", "chosen": "yes " * (i + 1), "rejected": "no"} for i in range(n)]
    for i, row in enumerate(rows):
        if subsets:
            row["subset"] = subsets[i % len(subsets)]
    return rows


def report_files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


OLD_REPORT = {"eval.html": "old page", "eval.json": '{"old": true}', "eval.md": "old numbers"}


# -- malformed inputs ------------------------------------------------------------------------------


def deep(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_json_line_is_located_and_skippable(model, tmp_path):
    lines = [json.dumps(r) for r in pair_rows()]
    lines.insert(2, '{"prompt": "p", "chosen": "a", "rejected": "b", "extra": ' + deep() + "}")
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(lines) + "\n")
    error = one_line_error(invoke("eval", model, data))
    assert f"{data}:3: invalid JSON: nested deeper than can be read" in error and "--skip-bad-rows" in error
    skipped = invoke("eval", model, data, "--skip-bad-rows")
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 of 9 rows" in skipped.output and "pairwise accuracy" in skipped.output


def test_deeply_nested_element_of_a_json_array_is_located(model, tmp_path):
    data = tmp_path / "rows.json"
    data.write_text('[\n{"prompt": "p", "response": "r"},\n{"prompt": "p", "response": ' + deep() + "}\n]\n")
    assert f"{data}:3: invalid JSON: nested deeper" in one_line_error(
        invoke("score", model, data, "--output", tmp_path / "out.jsonl")
    )


def test_lone_surrogate_escape_is_a_field_error_not_a_tokenizer_crash(model, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"prompt": "p", "response": "fine"}\n{"prompt": "p", "response": "half \\ud800 a pair"}\n')
    error = one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl"))
    assert f'{data}:2: field "response": holds a lone surrogate escape "\\ud800"' in error
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps(r) + "\n" for r in pair_rows()) + '{"prompt": "p", "chosen": "\\udfff", "rejected": "b"}\n'
    )
    assert f'{pairs}:9: field "chosen": holds a lone surrogate' in one_line_error(invoke("eval", model, pairs))
    assert invoke("eval", model, pairs, "--skip-bad-rows").exit_code == 0


def test_surrogate_pair_escapes_are_one_character_and_fine(model, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "response": "smile \U0001f600"}])
    data.write_text(data.read_text().replace("\U0001f600", "\\ud83d\\ude00"))
    assert invoke("score", model, data, "--output", tmp_path / "out.jsonl").exit_code == 0


def test_integer_over_the_digit_limit_is_a_field_error(model, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"prompt": "p", "response": "r", "id": ' + "7" * 5000 + "}\n")
    error = one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl"))
    assert f'{data}:1: field "id": invalid JSON: a number has more than' in error and "digits" in error


def test_integer_too_large_for_a_float_is_not_a_finite_number(model, tmp_path):
    rows = pair_rows()
    rows[1]["margin"] = int("9" * 400)  # readable, but beyond any float: float() raises OverflowError
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    error = one_line_error(invoke("eval", model, data))
    assert f'{data}:2: field "margin": is a number (' in error and "(expected a finite number)" in error


def test_corrupt_state_json_of_a_datasets_folder_is_named(model, tmp_path):
    from datasets import Dataset

    folder = tmp_path / "saved"
    Dataset.from_list(pair_rows()).save_to_disk(str(folder))
    (folder / "state.json").write_text("{damaged")
    error = one_line_error(invoke("eval", model, folder))
    assert f"{folder / 'state.json'}: is not valid JSON" in error


def test_parquet_timestamps_are_written_as_iso_text(model, tmp_path):
    when = [datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.datetime(2024, 5, 6)]
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt": ["p1", "p2"], "response": ["r1", "r2"], "when": when}), data)
    out = tmp_path / "out.jsonl"
    assert invoke("score", model, data, "--output", out).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["when"] for r in rows] == ["2024-01-02T03:04:05", "2024-05-06T00:00:00"]
    assert all(math.isfinite(r["reward"]) for r in rows)


def test_parquet_bytes_column_is_refused_before_scoring_and_the_old_output_kept(model, tmp_path, no_model_loads):
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt": ["p1", "p2"], "response": ["r1", "r2"], "blob": [b"ok", b"\x00\xff"]}), data)
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    error = one_line_error(invoke("score", model, data, "--output", out))
    assert f'{data}[row 0]: field "blob": is binary data, which JSON cannot hold' in error
    assert out.read_text() == "old\n"


@pytest.mark.parametrize("usetex", [False, True], ids=["mathtext", "usetex"])
def test_subset_names_with_dollars_are_drawn_literally(model, tmp_path, usetex):
    """``$\\frac$ of it`` is broken mathtext and ``a$b$c`` valid mathtext: both are a subset's name, as written,
    also when the user's matplotlibrc sets ``text.usetex`` (which would send them to LaTeX)."""
    import matplotlib

    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(subsets=("$\\frac$ of it", "a$b$c")))
    with matplotlib.rc_context({"text.usetex": usetex}):
        result = invoke("eval", model, data, "--report", tmp_path / "r")
    assert result.exit_code == 0, (result.output, result.exception)
    page = (tmp_path / "r" / "eval.html").read_text()
    assert page.count("<img") == 5 and 'id="subsets"' in page and "a$b$c" in page


def test_a_report_that_fails_to_render_leaves_the_old_report_whole(model, tmp_path, monkeypatch):
    import rewardlab.evaluate.html_report as html_report

    def broken(*args, **kwargs):
        raise ValueError("the plot could not be drawn")

    monkeypatch.setattr(html_report, "render_html", broken)
    report = tmp_path / "r"
    report.mkdir()
    for name, text in OLD_REPORT.items():
        (report / name).write_text(text)
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    assert "the plot could not be drawn" in one_line_error(invoke("eval", model, data, "--report", report))
    assert report_files(report) == OLD_REPORT


# -- what score writes ---------------------------------------------------------------------------


def test_non_finite_rewards_are_refused_not_written_as_nan(model, tmp_path, monkeypatch):
    broken = torch.tensor([0.5, math.nan, math.inf])  # what a broken head, or an overflow, would give
    monkeypatch.setattr(RewardModel, "reduce", lambda self, outputs, **k: (broken[: len(outputs)], None))
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows(3))
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    error = one_line_error(invoke("score", model, data, "--output", out))
    assert f"non-finite reward for 2 of 3 rows, the first at {data}:2; nothing was written" in error
    assert out.read_text() == "old\n"


def test_an_input_reward_field_is_refused_not_overwritten(model, tmp_path, no_model_loads):
    rows = scoring_rows(2)
    rows[1]["reward"] = 7
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    error = one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl"))
    assert f'{data}:2: field "reward": already exists and would be overwritten' in error


def test_blank_replies_are_scored_as_train_eval_and_serve_take_them(model, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "response": ""}, {"prompt": "p", "response": "  "}])
    out = tmp_path / "out.jsonl"
    result = invoke("score", model, data, "--output", out)
    assert result.exit_code == 0, result.output
    assert [math.isfinite(json.loads(line)["reward"]) for line in out.read_text().splitlines()] == [True, True]


def test_a_response_that_is_not_text_is_still_refused(model, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "response": 3}])
    error = one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl"))
    assert f'{data}:1: field "response": is a number (3)' in error


def test_csv_cells_longer_than_the_csv_module_default_are_read(model, tmp_path):
    long_reply = "word " * 30_000  # 150,000 characters: over csv's default 131,072
    data = tmp_path / "in.csv"
    data.write_text(f'prompt,response\np,"{long_reply}"\n')
    out = tmp_path / "out.jsonl"
    result = invoke("score", model, data, "--output", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["response"] == long_reply


# -- destinations ------------------------------------------------------------------------------------


def test_read_only_output_fails_before_the_work_and_keeps_the_old_file(model, tmp_path, tmpfs, no_model_loads):
    folder = tmpfs("ro", files={"out.jsonl": "old\n"}, read_only=True)
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows())
    error = one_line_error(invoke("score", model, data, "--output", folder / "out.jsonl"))
    assert error == f"error: {folder / 'out.jsonl'}: cannot write (Read-only file system)"
    assert (folder / "out.jsonl").read_text() == "old\n"


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_read_only_report_fails_before_the_work(model, tmp_path, tmpfs, no_model_loads, command):
    folder = tmpfs("ro", read_only=True)
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    models = [model] if command == "eval" else [model, model]
    error = one_line_error(invoke(command, *models, data, "--report", folder / "report"))
    assert error == f"error: {folder / 'report'}: cannot write (Read-only file system)"


def test_full_disk_while_scoring_keeps_the_old_output_and_leaves_no_temporary_file(model, tmp_path, tmpfs):
    folder = tmpfs("full", size="64k", files={"out.jsonl": "old\n"})
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows(n=6, words=4_000))  # ~120 kB of output
    error = one_line_error(invoke("score", model, data, "--output", folder / "out.jsonl"))
    assert error == f"error: {folder / 'out.jsonl'}: cannot write (No space left on device)"
    assert report_files(folder) == {"out.jsonl": "old\n"}


def test_full_disk_while_writing_a_report_keeps_the_old_report_whole(model, tmp_path, tmpfs):
    folder = tmpfs("full", size="64k", files=OLD_REPORT)  # the page's four plots do not fit
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(subsets=("a", "b")))
    error = one_line_error(invoke("eval", model, data, "--report", folder))
    assert error == f"error: {folder}: cannot write (No space left on device)"
    assert report_files(folder) == OLD_REPORT


def test_output_that_is_a_folder_and_report_that_is_a_file_fail_before_the_work(model, tmp_path, no_model_loads):
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows())
    folder = tmp_path / "a-folder"
    folder.mkdir()
    error = one_line_error(invoke("score", model, data, "--output", folder))
    assert error == f"error: {folder}: cannot write (it is a folder; give a file name)"
    error = one_line_error(invoke("eval", model, data, "--report", data))
    assert error == f"error: {data}: cannot write (it is a file; give a folder)"
    error = one_line_error(invoke("score", model, data, "--output", data / "out.jsonl"))
    assert error == f"error: {data / 'out.jsonl'}: cannot write ({data} is a file, not a folder)"


def test_patched_read_only_destination_fails_before_the_work(model, tmp_path, monkeypatch, no_model_loads):
    """Where no tmpfs can be mounted: the destination check meets a read-only file system."""
    import rewardlab.destinations as destinations

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(destinations.tempfile, "mkstemp", read_only)
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows())
    error = one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl"))
    assert error == f"error: {tmp_path / 'out.jsonl'}: cannot write (Read-only file system)"


def test_patched_full_disk_keeps_the_old_output(model, tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: the write itself meets a full disk after the scoring."""
    import rewardlab.evaluate.score_file as score_file

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", f"{path}.tmp")

    monkeypatch.setattr(score_file, "write_text_atomic", full)
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows())
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    assert one_line_error(invoke("score", model, data, "--output", out)) == (
        f"error: {out}: cannot write (No space left on device)"
    )
    assert out.read_text() == "old\n"


def test_any_other_os_error_is_one_line_naming_the_path(model, tmp_path, monkeypatch):
    import rewardlab.evaluate.score_file as score_file

    def unreadable(path, *args):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(score_file, "read_scoring_rows", unreadable)
    data = tmp_path / "in.jsonl"
    assert one_line_error(invoke("score", model, data, "--output", tmp_path / "out.jsonl")) == (
        f"error: {data}: Input/output error"
    )


def test_output_that_is_a_device_is_refused_rather_than_replaced(model, tmp_path, no_model_loads):
    """An atomic write renames a new file over the target: over ``/dev/null`` that would replace the
    device itself (as root), so a target that is not a regular file is refused."""
    data = write_jsonl(tmp_path / "in.jsonl", scoring_rows())
    error = one_line_error(invoke("score", model, data, "--output", "/dev/null"))
    assert error == "error: /dev/null: cannot write (it is not a regular file)"
    assert Path("/dev/null").is_char_device()


def test_train_into_a_read_only_folder_fails_before_reading_the_data(tmp_path, tmpfs, monkeypatch):
    """Before: the data was read, the head probe fitted, and then the first write failed."""
    import rewardlab.runs.data

    monkeypatch.setattr(rewardlab.runs.data, "load_split", lambda *a, **k: pytest.fail("data read first"))
    folder = tmpfs("ro", read_only=True)
    error = one_line_error(invoke("train", "--output", folder / "run", "max_steps=1"))
    assert error == f"error: {folder / 'run'}: cannot write (Read-only file system)"


def test_an_unfinished_model_is_one_warning_line_in_the_cli(model, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(model, unfinished)
    config = json.loads((unfinished / "config.json").read_text())
    config["rewardlab"]["status"] = "unfinished"
    (unfinished / "config.json").write_text(json.dumps(config))
    result = invoke("eval", unfinished, write_jsonl(tmp_path / "pairs.jsonl", pair_rows()))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "did not finish" in warnings[0] and "--resume" in warnings[0], result.output
    assert "UnfinishedModelWarning" not in result.output
