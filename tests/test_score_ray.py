"""``rewardlab score --workers``: Ray Data actors on a local two-worker cluster (127.0.0.1) write the rows
``score`` writes, as Parquet shards, bit for bit; a rerun scores only the shards missing, and a folder of
another scoring or a bad row is refused before any Ray work (issue 38). Every kind of model ``score``
takes scores over Ray too: ensembles, multi-attribute directions, pluralistic users."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from synthetic import synthetic_pairs, write_jsonl
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.data.records import DataError
from rewardlab.evaluate.score_file import score_file
from rewardlab.evaluate.score_ray import MANIFEST, ray_session, score_file_ray, shard_name
from rewardlab.models.reward_model import RewardModel

pytest.importorskip("ray")
torch.set_num_threads(1)

ROWS, SHARD_ROWS = 25, 10  # shards of 10, 10 and 5 rows


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster of two worker CPUs for the module (its start-up is most of the module's time)."""
    with ray_session(2) as ray:
        yield ray


@pytest.fixture(scope="module")
def model(tiny_encoder_dir, tmp_path_factory) -> Path:
    reward_model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    reward_model.model.classifier.weight.data *= 100  # rewards far from zero, so a last-bit difference shows
    return reward_model.save_pretrained(tmp_path_factory.mktemp("ray") / "model")


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs(n: int = ROWS) -> list[dict]:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "then", "it", "rests"]
    return [
        {"id": f"r{i}", "prompt": f"question {i}?", "response": " ".join(words[: 1 + (i * 7) % 13] * (1 + i % 3))}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def scored(cluster, model, tmp_path_factory):
    """The rows scored once over Ray (2 workers) and once by ``score_file`` in this process."""
    folder = tmp_path_factory.mktemp("scored")
    source = write_rows(folder / "in.jsonl", pairs())
    result = score_file_ray(model, source, folder / "shards", workers=2, shard_rows=SHARD_ROWS)
    single = score_file(model, source, folder / "single.jsonl")
    return source, folder / "shards", result, single


def shard_rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("part-*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_shards_hold_the_rows_score_writes_bit_for_bit(scored):
    _, folder, result, single = scored
    assert sorted(p.name for p in folder.glob("part-*.parquet")) == [shard_name(i) for i in range(3)]
    assert [pq.read_metadata(folder / shard_name(i)).num_rows for i in range(3)] == [10, 10, 5]
    assert shard_rows(folder) == single  # every field, the reward exactly (scoring is batch-invariant)
    assert len({r["reward"] for r in single}) > 5
    assert result.scored == [0, 1, 2] and result.skipped == 0
    assert sum(w.rows for w in result.workers.values()) == ROWS
    assert all(w.peak_rss_bytes > 50 * 2**20 for w in result.workers.values())


def test_a_rerun_scores_only_the_missing_or_broken_shards(scored, model, tmp_path):
    source, original, _, single = scored
    folder = shutil.copytree(original, tmp_path / "shards")
    (folder / shard_name(1)).unlink()  # a crash before shard 1 was renamed into place
    (folder / shard_name(2)).write_bytes(b"not parquet")  # a file damaged after the run
    (folder / f".{shard_name(1)}.999999999.abcd1234.tmp").write_bytes(b"half")  # a dead writer's temporary
    kept = (folder / shard_name(0)).stat().st_mtime_ns
    result = CliRunner().invoke(
        app,
        ["score", str(model), str(source), "--output", str(folder), "--workers", "2", "--shard-rows", str(SHARD_ROWS)],
    )
    assert result.exit_code == 0, result.output
    assert f"scored 15 rows in 2 shards (1 already there) → {folder}" in " ".join(result.output.split())
    assert (folder / shard_name(0)).stat().st_mtime_ns == kept
    assert shard_rows(folder) == single
    assert sorted(p.name for p in folder.iterdir()) == [*(shard_name(i) for i in range(3)), MANIFEST]


def test_a_folder_of_another_scoring_is_refused(scored, model, tmp_path):
    source, original, _, _ = scored
    folder = shutil.copytree(original, tmp_path / "shards")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    changed = pairs()
    changed[13]["response"] += " more"
    other = write_rows(tmp_path / "other.jsonl", changed)
    with pytest.raises(ValueError, match=r"holds the shards of another scoring.*input_sha256"):
        score_file_ray(model, other, folder, workers=2, shard_rows=SHARD_ROWS)
    with pytest.raises(ValueError, match="shard_rows 10 there, 5 now"):
        score_file_ray(model, source, folder, workers=2, shard_rows=5)
    (folder / MANIFEST).unlink()
    with pytest.raises(ValueError, match=r"holds Parquet shards .* but no rewardlab-shards\.json"):
        score_file_ray(model, source, folder, workers=2, shard_rows=SHARD_ROWS)
    del before[MANIFEST]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize(
    ("row", "field"),
    [({"prompt": "q"}, "response"), ({"prompt": "q", "response": "a", "reward": 1.0}, "reward")],
)
def test_a_bad_row_gets_the_error_score_gives_before_any_work(model, tmp_path, row, field):
    source = write_rows(tmp_path / "in.jsonl", [*pairs(2), row, *pairs(2)])
    with pytest.raises(DataError) as single:
        score_file(model, source, tmp_path / "single.jsonl")
    with pytest.raises(DataError) as sharded:
        score_file_ray(model, source, tmp_path / "shards", workers=2)
    assert str(sharded.value) == str(single.value)
    assert f'in.jsonl:3: field "{field}"' in str(sharded.value)
    assert not (tmp_path / "shards").exists() or not any((tmp_path / "shards").iterdir())


def test_a_field_parquet_cannot_hold_in_one_column_is_named(model, tmp_path):
    rows = pairs(3)
    rows[2]["id"] = {"nested": 1}
    source = write_rows(tmp_path / "in.jsonl", rows)
    with pytest.raises(DataError, match=r'in.jsonl:3: field "id": does not fit one Parquet column.*in.jsonl:1'):
        score_file_ray(model, source, tmp_path / "shards", workers=2)


def one_line_error(*args: object) -> str:
    result = CliRunner().invoke(app, ["score", *(str(a) for a in args)])
    assert result.exit_code == 2, (result.output, result.exception)
    return " ".join(result.output.split())


def test_shard_rows_without_workers_is_refused(model, tmp_path):
    source = write_rows(tmp_path / "in.jsonl", pairs(3))
    said = one_line_error(model, source, "--output", tmp_path / "o.jsonl", "--shard-rows", "5")
    assert "error: --shard-rows is for --workers" in said
    assert not (tmp_path / "o.jsonl").exists()


@pytest.fixture(scope="module")
def kinds(model, tiny_encoder_dir, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """A model of every other kind ``score`` takes, with the options that say what it scores."""
    root = tmp_path_factory.mktemp("kinds")

    def new(name: str, **head) -> Path:
        reward_model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32, **head)
        reward_model.model.classifier.weight.data *= 100
        reward_model.info.reward_mean, reward_model.info.reward_std = 1.0, 3.0  # an ensemble member's scale
        return reward_model.save_pretrained(root / name)

    labelled = [{**r, "annotator": f"u{i % 3}"} for i, r in enumerate(synthetic_pairs(60, seed=3))]
    pluralistic = rewardlab.train(
        data=str(write_jsonl(labelled, root / "users.jsonl")),
        backbone=str(tiny_encoder_dir),
        output_dir=root / "pal",
        objective="pal",
        max_steps=2,
        batch_size=8,
        precision="fp32",
        progress=False,
        num_threads=1,
        **{"model.max_length": 32},
    ).model_dir
    examples = write_jsonl(synthetic_pairs(4, seed=4), root / "new-user.jsonl")
    return {
        "ensemble of members": (new("a"), {"member": [new("b")], "aggregation": "uwo", "uncertainty_weight": 0.5}),
        "ensemble head": (new("ensemble", outputs=3, head="ensemble"), {}),
        "attributes": (new("attributes", outputs=2, head="attributes"), {"direction": "1,0.5"}),
        "known user": (pluralistic, {"user": "u1"}),
        "new user": (pluralistic, {"user_examples": examples}),
        "population": (pluralistic, {}),
    }


@pytest.mark.parametrize(
    "kind", ["ensemble of members", "ensemble head", "attributes", "known user", "new user", "population"]
)
def test_every_kind_of_model_is_scored_as_score_scores_it(cluster, kinds, kind, tmp_path):
    """Ensembles (their uncertainty too), a direction over attributes, a pluralistic model's users: each
    actor loads the plan ``score`` scores with, so the shards hold its rows bit for bit."""
    model, options = kinds[kind]
    source = write_rows(tmp_path / "in.jsonl", pairs())
    score_file_ray(model, source, tmp_path / "shards", workers=2, shard_rows=SHARD_ROWS, **options)
    single = score_file(model, source, tmp_path / "single.jsonl", **options)
    assert shard_rows(tmp_path / "shards") == single
    assert ("uncertainty" in single[0]) == kind.startswith("ensemble")
    assert len({r["reward"] for r in single}) > 5


def test_a_folder_scored_with_other_options_is_refused(cluster, kinds, tmp_path):
    """Another user, direction or ensemble option is another scoring: refused before any Ray work."""
    source = write_rows(tmp_path / "in.jsonl", pairs())
    pluralistic, _ = kinds["known user"]
    folder = tmp_path / "shards"
    score_file_ray(pluralistic, source, folder, workers=2, shard_rows=SHARD_ROWS, user="u1")
    for other in ({"user": "u2"}, {"user_examples": kinds["new user"][1]["user_examples"]}, {}):
        with pytest.raises(ValueError, match=r"holds the shards of another scoring \(user"):
            score_file_ray(pluralistic, source, folder, workers=2, shard_rows=SHARD_ROWS, **other)
    attributes, _ = kinds["attributes"]
    score_file_ray(attributes, source, tmp_path / "a", workers=2, shard_rows=SHARD_ROWS, direction="1,0.5")
    with pytest.raises(ValueError, match=r"another scoring \(direction \[1.0, 0.5\] there, \[0.0, 1.0\] now"):
        score_file_ray(attributes, source, tmp_path / "a", workers=2, shard_rows=SHARD_ROWS, direction="0,1")


def test_the_same_rows_and_model_at_other_paths_are_the_same_scoring(scored, model, tmp_path):
    source, original, _, _ = scored
    folder = shutil.copytree(original, tmp_path / "shards")
    moved = shutil.copytree(model, tmp_path / "moved-model")
    copy = shutil.copy(source, tmp_path / "copy.jsonl")
    result = score_file_ray(moved, copy, folder, workers=2, shard_rows=SHARD_ROWS)
    assert result.scored == [] and result.skipped == 3
    assert json.loads((folder / MANIFEST).read_text())["input"] == str(copy)
