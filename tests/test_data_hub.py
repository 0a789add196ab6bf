"""Data named as on the Hub (``org/name``, ``org/name:split``), read offline from a cache the test builds.

The caches are laid out as datasets and huggingface_hub lay them out, with no network at all: the
``no_network`` fixture fails (and records) any connection attempt, and datasets' offline switch is
turned off in the test, so the reader must keep to the cache on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rewardlab.data import DataError, iter_rows, load_preferences
from rewardlab.data.forms import UNPAIRED_KTO

TRAIN = [{"prompt": f"Question {i}?", "chosen": f"A good answer {i}.", "rejected": f"Bad {i}."} for i in range(3)]
TEST = [{"prompt": "Held out?", "chosen": "Yes, held out.", "rejected": "No."}]
KTO = [
    {"prompt": "Capital of France?", "completion": "Paris.", "label": True},
    {"prompt": "Capital of France?", "completion": "Lyon.", "label": False},
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to resolve or reach a host fails and is recorded: a test asserts the list stays empty."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]) -> tuple[Path, Path]:
    """Empty datasets and Hub caches for this test, with datasets' offline switch OFF (the reader must
    keep to the cache by itself). ``HF_HOME`` sets both when a process starts; in this process the
    libraries have read it already, so their cache settings are pointed here directly."""
    import datasets.config
    from huggingface_hub import constants

    prepared, hub = tmp_path / "hf" / "datasets", tmp_path / "hf" / "hub"
    prepared.mkdir(parents=True)
    hub.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", prepared)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    return prepared, hub


def repo_folder(root: Path, name: str, splits: dict[str, list[dict]]) -> Path:
    """A dataset repository as on the Hub: one Parquet file per split under ``data/``, named the way
    ``push_to_hub`` names them (datasets reads the split from the file name)."""
    folder = root / name
    (folder / "data").mkdir(parents=True)
    for split, rows in splits.items():
        pq.write_table(pa.Table.from_pylist(rows), folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


def prepare_in_datasets_cache(prepared: Path, repo_id: str, splits: dict[str, list[dict]], tmp_path: Path) -> None:
    """What an online ``load_dataset(repo_id)`` leaves behind: ``<cache>/org___name/default/0.0.0/<hash>/``
    with ``dataset_info.json`` and ``name-<split>.arrow``. The same builder prepares the repository's
    files from a local copy; the Hub's run only prefixes the folder with the namespace (``org___``)."""
    from datasets import load_dataset

    org, name = repo_id.split("/")
    stage = tmp_path / "stage"
    load_dataset(str(repo_folder(tmp_path / "repo", name, splits)), cache_dir=str(stage))
    shutil.move(stage / name, prepared / f"{org}___{name}")


def download_to_hub_cache(hub: Path, repo_id: str, splits: dict[str, list[dict]], tmp_path: Path) -> None:
    """What ``hf download --repo-type dataset repo_id`` leaves: ``datasets--org--name/snapshots/<commit>/``
    holding the repository's files, and ``refs/main`` naming that commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = hub / ("datasets--" + repo_id.replace("/", "--"))
    shutil.copytree(repo_folder(tmp_path / "download", repo_id.split("/")[1], splits), root / "snapshots" / commit)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_a_name_reads_the_datasets_cache_offline(
    caches: tuple[Path, Path], tmp_path: Path, no_network: list[str]
) -> None:
    import datasets.config

    prepare_in_datasets_cache(caches[0], "org/prefs", {"train": TRAIN, "test": TEST}, tmp_path)
    read = list(iter_rows("org/prefs"))
    assert [row for _, row in read] == TRAIN  # train by default
    assert [location for location, _ in read] == [f"org/prefs[train row {i}]" for i in range(3)]
    loaded = load_preferences("org/prefs")
    assert [pair.chosen for pair in loaded.pairs] == [row["chosen"] for row in TRAIN]
    assert loaded.pairs[2].source == "org/prefs[train row 2]"
    assert no_network == []
    assert datasets.config.HF_HUB_OFFLINE is False  # the offline switch is put back as it was


def test_name_colon_split_and_the_split_argument(caches: tuple[Path, Path], tmp_path: Path) -> None:
    prepare_in_datasets_cache(caches[0], "org/prefs", {"train": TRAIN, "test": TEST}, tmp_path)
    assert list(iter_rows("org/prefs:test")) == [("org/prefs[test row 0]", TEST[0])]
    assert list(iter_rows("org/prefs", split="test")) == [("org/prefs[test row 0]", TEST[0])]
    with pytest.raises(DataError, match=r'^org/prefs: has no split "dev" \(available: train, test\)'):
        list(iter_rows("org/prefs:dev"))
    with pytest.raises(DataError, match=r'^org/prefs:test: names split "test" but split "train" was also given$'):
        list(iter_rows("org/prefs:test", split="train"))


def test_a_name_reads_a_hub_cache_download(caches: tuple[Path, Path], tmp_path: Path, no_network: list[str]) -> None:
    download_to_hub_cache(caches[1], "someone/pairs", {"train": TRAIN, "test": TEST}, tmp_path)
    assert [row for _, row in iter_rows("someone/pairs")] == TRAIN
    assert list(iter_rows("someone/pairs:test")) == [("someone/pairs[test row 0]", TEST[0])]
    download_to_hub_cache(caches[1], "someone/held-out", {"test": TEST}, tmp_path)
    assert list(iter_rows("someone/held-out")) == [("someone/held-out[test row 0]", TEST[0])]  # the only split
    assert no_network == []


def test_an_unknown_name_is_one_line_naming_both_caches(caches: tuple[Path, Path]) -> None:
    with pytest.raises(DataError) as caught:
        list(iter_rows("org/missing:test"))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("org/missing: is neither a local file or folder nor a dataset in the Hugging Face cache")
    assert f"looked in {caches[0]} and {caches[1]}" in message
    assert "`hf download --repo-type dataset org/missing`" in message
    assert "`huggingface-cli download --repo-type dataset org/missing`" in message


def test_a_missing_file_is_not_taken_for_a_name(caches: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "pairs.jsonl"
    with pytest.raises(DataError, match=r"^.*pairs\.jsonl: no such file or directory$"):
        list(iter_rows(missing))
    with pytest.raises(DataError, match=r"^data/pairs\.jsonl: no such file or directory$"):
        list(iter_rows("data/pairs.jsonl"))  # one slash, but a file name


def test_an_existing_local_path_wins_over_the_cache(
    caches: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import Dataset, DatasetDict

    prepare_in_datasets_cache(caches[0], "org/prefs", {"train": TRAIN, "test": TEST}, tmp_path)
    local = [{"prompt": "Local?", "chosen": "From the folder.", "rejected": "From the cache."}]
    monkeypatch.chdir(tmp_path)
    DatasetDict({"train": Dataset.from_list(local), "test": Dataset.from_list(local[::-1])}).save_to_disk("org/prefs")
    assert [row for _, row in iter_rows("org/prefs")] == local
    assert list(iter_rows("org/prefs:test")) == [("org/prefs[test][row 0]", local[0])]  # the folder's split


def test_bad_rows_from_the_cache_are_named_by_row_and_field(caches: tuple[Path, Path], tmp_path: Path) -> None:
    rows = [*TRAIN[:2], {"prompt": "Empty?", "chosen": "", "rejected": "Something."}]
    prepare_in_datasets_cache(caches[0], "org/bad", {"train": rows}, tmp_path)
    with pytest.raises(DataError, match=r'^org/bad\[train row 2\]: field "chosen": is empty'):
        load_preferences("org/bad")
    assert load_preferences("org/bad", skip_bad_rows=True).skipped[0].location == "org/bad[train row 2]"


def test_unpaired_kto_rows_say_so(caches: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in KTO), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    assert str(caught.value).startswith(f"{path}:1: unpaired KTO rows (")
    assert "pair them" in str(caught.value) and "KTOTrainer" in str(caught.value)
    prepare_in_datasets_cache(caches[0], "org/kto", {"train": KTO}, tmp_path)
    with pytest.raises(DataError) as caught:
        load_preferences("org/kto", skip_bad_rows=True)  # every row unusable: the first reason is given
    first = f"org/kto[train row 0]: {UNPAIRED_KTO}"
    assert str(caught.value) == f"org/kto: none of its 2 rows could be used; the first: {first}"


def test_kto_message_leaves_pairs_alone() -> None:
    """A pair row that also carries ``completion`` and ``label`` (extra fields) is still a pair."""
    from rewardlab.data.forms import parse_row
    from rewardlab.data.schema import ColumnMap

    row = {**TRAIN[0], "completion": "x", "label": True}
    assert parse_row(row, "here", ColumnMap()).pairs[0].chosen == TRAIN[0]["chosen"]


def test_command_line_reads_a_name_from_hf_home(tmp_path: Path) -> None:
    """``rewardlab data check org/name:split`` in a fresh process, its cache found through ``HF_HOME`` alone."""
    home = tmp_path / "home"
    download_to_hub_cache(home / "hub", "org/prefs", {"train": TRAIN, "test": TEST}, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))} | {"HF_HOME": str(home)}
    ok = subprocess.run(
        [sys.executable, "-m", "rewardlab", "data", "check", "org/prefs:test", "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["pairs"] == 1
    missing = subprocess.run(
        [sys.executable, "-m", "rewardlab", "data", "check", "org/missing", "--json"],
        capture_output=True, text=True, timeout=300, env={**env, "COLUMNS": "400"},
    )  # fmt: skip
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr + missing.stdout
    assert f"looked in {home / 'datasets'} and {home / 'hub'}" in missing.stdout + missing.stderr
