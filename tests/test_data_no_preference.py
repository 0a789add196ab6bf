"""Rows that prefer one of two identical replies carry no preference: loading skips and counts them
without ``skip_bad_rows``, and still stops on a real mistake (issue 27, bug 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.data import ColumnMap, load_preferences
from rewardlab.data.records import DataError
from rewardlab.data.schema import NoPreference

GOOD = {"prompt": "Q?", "chosen": "yes", "rejected": "no"}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_identical_pair_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [GOOD, {**GOOD, "rejected": "yes"}, GOOD])
    loaded = load_preferences(path)
    assert len(loaded.pairs) == 2
    assert [(type(e), e.location, e.field) for e in loaded.skipped] == [(NoPreference, f"{path}:2", "rejected")]
    assert loaded.skip_summary().splitlines()[0] == f"skipped 1 of 3 rows in {path}:"


def test_identical_graded_completions_labelled_better_are_skipped(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Q?", "a": "x", "b": "y", "preference": "a-is-better"},
        {"prompt": "Q?", "a": "x", "b": "x", "preference": "b-is-slightly-better"},
        {"prompt": "Q?", "a": "x", "b": "x", "preference": "tie"},
    ]
    loaded = load_preferences(write(tmp_path / "g.jsonl", rows), columns=ColumnMap.parse("response_a=a,response_b=b"))
    assert len(loaded.pairs) == 2 and loaded.pairs[1].tie
    assert [e.field for e in loaded.skipped] == ["b"]


def test_a_real_mistake_after_an_identical_pair_still_stops_loading(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [GOOD, {**GOOD, "rejected": "yes"}, {**GOOD, "chosen": ""}])
    with pytest.raises(DataError, match=rf"{path}:3: field \"chosen\": is empty .*--skip-bad-rows"):
        load_preferences(path)


def test_a_file_of_identical_pairs_only_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [{**GOOD, "rejected": "yes"}])
    with pytest.raises(DataError, match="none of its 1 rows could be used"):
        load_preferences(path)
