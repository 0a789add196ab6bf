"""Packaged datasets by name (``data/named.py``): ``--data ultrafeedback`` reads the packaged file with
its documented column map and bad-row handling, and a user's ``--columns`` still win."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import ColumnMap, DataError, default_dataset_path, load_preferences
from rewardlab.data.named import NAMED, named_data
from rewardlab.runs.data import SplitDataConfig, load_split

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def test_every_name_has_a_packaged_file_and_its_licence() -> None:
    for data in NAMED.values():
        assert data.path().is_file(), data.name
        licence_file = data.licence.split("(")[1].rstrip(")")
        assert (data.path().parent / licence_file).is_file(), licence_file
    assert named_data("default") is NAMED["hh-harmless"]
    assert NAMED["hh-harmless"].path() == default_dataset_path()
    assert named_data("no-such-name") is None


@pytest.mark.skipif(not REPO_DATA.is_dir(), reason="the repository's data/ folder is not here")
@pytest.mark.parametrize("name", ["ultrafeedback", "tulu1", "finegrained"])
def test_packaged_files_are_the_repository_files_unchanged(name: str) -> None:
    packaged = NAMED[name].path()
    original = REPO_DATA / packaged.name.removesuffix(".gz")
    assert gzip.decompress(packaged.read_bytes()) == original.read_bytes()


def test_named_data_loads_with_its_documented_column_map_and_skips() -> None:
    """Counts from data/README.md: UltraFeedback-1000 has 4 rows of identical replies and 2 with an
    empty reply (skipped: 1000 - 6 = 994 pairs, without --skip-bad-rows given); Tulu 1 has one
    judgement of two identical completions (1150 - 1 = 1149); FineGrained has 6 judgements for each of
    500 questions (3000 pairs)."""
    ultrafeedback = load_preferences("ultrafeedback")
    assert (len(ultrafeedback.pairs), len(ultrafeedback.skipped)) == (994, 6)
    assert ultrafeedback.pairs[0].chosen_rating is not None  # the rating columns were mapped
    tulu = load_preferences("tulu1")
    assert (len(tulu.pairs), len(tulu.skipped)) == (1149, 1)
    assert tulu.pairs[0].annotator is not None  # annotator=evaluator
    assert len(load_preferences("finegrained").pairs) == 3000
    assert len(load_preferences("hh-harmless").pairs) == len(load_preferences(None).pairs) == 1850


def test_user_columns_override_only_the_fields_they_name() -> None:
    with gzip.open(NAMED["tulu1"].path(), "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    overridden = load_preferences("tulu1", columns=ColumnMap.parse("annotator=model_a"))
    first = next(row for row in rows if row["completion_a"] != row["completion_b"])
    assert overridden.pairs[0].annotator == first["model_a"]
    assert {overridden.pairs[0].chosen, overridden.pairs[0].rejected} <= {
        first["completion_a"],
        first["completion_b"],
    }  # the rest of the named map (response_a/response_b) still applies


def test_an_existing_file_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("tulu1").mkdir()  # a folder, not readable as pairs: proves the local path was the one read
    with pytest.raises(DataError):
        load_preferences("tulu1")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match=r"nor a packaged dataset .*hh-harmless, ultrafeedback, tulu1, finegrained"):
        load_preferences("ultrafedback")


def test_a_run_splits_named_data() -> None:
    split = load_split(SplitDataConfig(path="tulu1"), say=lambda _: None)
    assert len(split.splits.train) + len(split.splits.validation) + len(split.splits.test) == 1149


def test_data_check_takes_a_name() -> None:
    shown = CliRunner().invoke(app, ["data", "check", "ultrafeedback", "--json"])
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["pairs"] == 994 and summary["skipped"]["count"] == 6
