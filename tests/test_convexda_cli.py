"""ConvexDA from ``rewardlab train data.convex_da=true``: the synonym candidates (exact, deterministic,
in their original's group), the hull selection on real embeddings, held-out splits untouched."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.augment import hull_vertices
from rewardlab.data.records import PreferencePair
from rewardlab.data.split import split_pairs
from rewardlab.data.synonyms import SYNONYMS, split_key, swap_synonyms, synonym_candidates
from rewardlab.models.embeddings import load_embedder
from rewardlab.runs.augmentation import ConvexDASettings, convex_da_pairs
from rewardlab.runs.data import SplitDataConfig, load_split

torch.set_num_threads(1)

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers"]


def rows() -> list[dict]:
    """20 pairs whose texts hold listed words (big, quick, really, help, good, bad, maybe)."""
    return [
        {
            "prompt": f"Can you really help me with a big question about {topic} ({i})?",
            "chosen": f"Sure, I can help. A good and quick answer about {topic}: maybe start small.",
            "rejected": "That is a bad question.",
        }
        for i, topic in enumerate(TOPICS * 2)
    ]


def write_rows(path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")


def test_swap_synonyms_known_answer():
    """rate 1 swaps every listed word; each of these has a single synonym, so the answer is fixed:
    start→begin (capital kept), buy→purchase, kids→children, house→home; "car" is not listed."""
    swapped = swap_synonyms("Start to buy the kids a house and a car.", random.Random(0), rate=1.0)
    assert swapped == "Begin to purchase the children a home and a car."
    assert all(word not in SYNONYMS[word] for word in SYNONYMS)  # a swap always changes the word


def test_candidates_are_deterministic_distinct_and_keep_the_group():
    pair = PreferencePair(**rows()[0], id="p0")
    first, again = synonym_candidates(pair, 6, seed=0), synonym_candidates(pair, 6, seed=0)
    assert first == again and len(first) >= 4
    assert synonym_candidates(pair, 6, seed=1) != first
    texts = {(c.prompt, c.chosen, c.rejected) for c in first}
    assert len(texts) == len(first) and (pair.prompt, pair.chosen, pair.rejected) not in texts
    assert all(c.group == "p0" == split_key(pair) and c.id is None for c in first)
    unlisted = PreferencePair("Describe cats.", "Cats purr.", "No.")
    assert synonym_candidates(unlisted, 6) == []  # nothing to swap: no candidate, not the original again


def test_candidates_follow_their_original_when_split_again():
    """A candidate's group is its original's split key, so splitting originals and candidates together
    puts every candidate where its original goes: no rewrite of a test pair can land in training."""
    pairs = [PreferencePair(**r) for r in rows()]
    candidates = [c for p in pairs for c in synonym_candidates(p, 3)]
    alone, together = split_pairs(pairs, seed=0), split_pairs(pairs + candidates, seed=0)
    for name in ("train", "validation", "test"):
        originals = {split_key(p) for p in getattr(alone, name)}
        assert {split_key(p) for p in getattr(together, name)} == originals


def test_convex_da_keeps_only_hull_vertices_of_real_embeddings(tiny_encoder_dir):
    pairs = [PreferencePair(**r) for r in rows()[:3]]
    embedder = load_embedder(str(tiny_encoder_dir), precision="fp32")
    settings = ConvexDASettings(candidates=5, dims=1)
    output, made = convex_da_pairs(pairs, settings, embedder)
    assert output.pairs[:3] == pairs and made == 15
    for i, pair in enumerate(pairs):
        candidates = synonym_candidates(pair, 5)
        group = [pair, *candidates]
        points = embedder([p.prompt for p in group] * 2, [p.chosen for p in group] + [p.rejected for p in group])
        joined = np.concatenate([points[: len(group)], points[len(group) :]], axis=1)
        expected = [j for j in range(len(candidates)) if hull_vertices(joined, dims=1)[1 + j]]
        assert output.kept[i] == expected
        assert 1 <= len(expected) <= 2  # on a line the hull of 6 points has 2 ends: at most 2 candidates
    assert len(output.pairs) == 3 + sum(len(k) for k in output.kept)


def test_embeddings_are_unit_rows_independent_of_order(tiny_encoder_dir):
    embedder = load_embedder(str(tiny_encoder_dir), precision="fp32", batch_size=2)
    prompts, replies = ["a", "a longer prompt here", "b"], ["one", "two words", "three little words"]
    forward = embedder(prompts, replies)
    backward = embedder(prompts[::-1], replies[::-1])
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(forward, backward[::-1])


def test_load_split_augments_training_only(tiny_encoder_dir, tmp_path):
    write_rows(tmp_path / "pairs.jsonl")
    plain = load_split(SplitDataConfig(path=str(tmp_path / "pairs.jsonl")), say=lambda _: None)
    notes: list[str] = []
    config = SplitDataConfig(
        path=str(tmp_path / "pairs.jsonl"), convex_da=True, convex_da_encoder=str(tiny_encoder_dir), convex_da_dims=2
    )
    augmented = load_split(config, say=notes.append)
    assert augmented.splits.validation == plain.splits.validation and augmented.splits.test == plain.splits.test
    train = augmented.splits.train
    assert train[: len(plain.splits.train)] == plain.splits.train
    added = train[len(plain.splits.train) :]
    assert added and all(p.group in {split_key(q) for q in plain.splits.train} for p in added)
    assert notes[-1].startswith(f"ConvexDA: {4 * len(plain.splits.train)} synonym candidates")


def test_train_command_with_convex_da(tiny_encoder_dir, tmp_path):
    write_rows(tmp_path / "pairs.jsonl")
    args = ["train", "--data", str(tmp_path / "pairs.jsonl"), "--backbone", str(tiny_encoder_dir)]
    args += ["--output", str(tmp_path / "run"), "max_steps=2", "precision=fp32", "progress=false", "num_threads=1"]
    args += ["model.max_length=32", "data.convex_da=true", f"data.convex_da_encoder={tiny_encoder_dir}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ConvexDA:" in result.output and "held-out accuracy" in result.output
    assert "convex_da: true" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.parametrize("override", ["data.convex_da_candidates=0", "data.convex_da_dims=0"])
def test_bad_convex_da_settings_are_one_error(override, tmp_path):
    result = CliRunner().invoke(app, ["train", "--output", str(tmp_path / "run"), "data.convex_da=true", override])
    assert result.exit_code != 0
    assert "data.convex_da_candidates and data.convex_da_dims must be at least 1" in result.output
