"""``rewardlab dpo data.reward_augmented=true``: trains on the goal-conditioned pairs of Zhang et al. 2024."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import split_pairs
from rewardlab.data.records import PreferencePair

torch.set_num_threads(1)

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers"]


def write_rated_pairs(path, ratings: bool = True) -> list[PreferencePair]:
    """20 pairs; the chosen reply rated 8 and the rejected 3, but pair 0's two replies rated alike (a tie)."""
    rows = []
    for i, topic in enumerate(TOPICS * 2):
        row = {"id": f"p{i}", "prompt": f"Tell me about {topic} ({i}).", "chosen": f"Sure, {topic}.", "rejected": "No."}
        if ratings:
            row |= {"chosen_rating": 5.0 if i == 0 else 8.0, "rejected_rating": 5.0 if i == 0 else 3.0}
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"], id=r["id"]) for r in rows]


def run(tiny_decoder_dir, data, out, *extra: str):
    args = ["dpo", "--data", str(data), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["train.steps=2", "train.batch_pairs=8", "num_threads=1", "eval.kl_prompts=0", *extra]
    return CliRunner().invoke(app, args)


def test_dpo_trains_on_the_reward_augmented_pairs(tiny_decoder_dir, tmp_path):
    pairs = write_rated_pairs(tmp_path / "rated.jsonl")
    splits = split_pairs(pairs, validation=0.1, test=0.2, seed=0)
    result = run(tiny_decoder_dir, tmp_path / "rated.jsonl", tmp_path / "run", "data.reward_augmented=true")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    tie_in_train = any(p.id == "p0" for p in splits.train)
    # every training pair but the tie becomes two; the held-out pairs stay plain
    assert report["data"]["train_pairs"] == 2 * (len(splits.train) - tie_in_train)
    assert report["data"]["reward_augmented"] == {"source_pairs": len(splits.train)}
    assert report["data"]["test_pairs"] == len(splits.test)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "reward_augmented: true" in config

    plain = run(tiny_decoder_dir, tmp_path / "rated.jsonl", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    plain_report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert plain_report["data"]["train_pairs"] == len(splits.train)
    assert plain_report["data"]["reward_augmented"] is None


def test_unrated_data_is_one_error_line(tiny_decoder_dir, tmp_path):
    write_rated_pairs(tmp_path / "plain.jsonl", ratings=False)
    result = run(tiny_decoder_dir, tmp_path / "plain.jsonl", tmp_path / "run", "data.reward_augmented=true")
    assert result.exit_code == 2
    assert "reward augmentation needs chosen_rating and rejected_rating" in result.output
    assert "Traceback" not in result.output
