"""Deterministic train/validation/test splitting."""

from __future__ import annotations

import hashlib
import math

import pytest

from rewardlab.data import PreferencePair, Splits, split_pairs


def make_pairs(n: int, *, with_ids: bool = True) -> list[PreferencePair]:
    return [
        PreferencePair(
            prompt=f"Question {i}?", chosen=f"good {i}", rejected=f"bad {i}", id=f"p{i}" if with_ids else None
        )
        for i in range(n)
    ]


def as_ids(splits: Splits) -> tuple[list[str | None], ...]:
    return tuple([p.id for p in part] for part in (splits.train, splits.validation, splits.test))


def test_same_result_every_time() -> None:
    pairs = make_pairs(200)
    assert split_pairs(pairs, seed=5) == split_pairs(list(pairs), seed=5)


def test_fractions_disjoint_and_complete() -> None:
    pairs = make_pairs(200)
    splits = split_pairs(pairs, validation=0.1, test=0.2)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (140, 20, 40)
    train, validation, test = (set(ids) for ids in as_ids(splits))
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == {p.id for p in pairs}


def test_independent_of_input_order_and_keeps_file_order() -> None:
    pairs = make_pairs(100)
    forward = split_pairs(pairs, seed=1)
    backward = split_pairs(pairs[::-1], seed=1)
    for ours, theirs in zip(as_ids(forward), as_ids(backward), strict=True):
        assert sorted(ours) == sorted(theirs)
        assert theirs == ours[::-1]  # each split keeps the order it was given in


def test_seed_changes_the_split() -> None:
    pairs = make_pairs(100)
    assert as_ids(split_pairs(pairs, seed=0))[2] != as_ids(split_pairs(pairs, seed=1))[2]


def test_order_is_sha256_of_seed_and_id() -> None:
    pairs = make_pairs(50)
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(f"7:{p.id}".encode()).hexdigest())
    splits = split_pairs(pairs, validation=0.2, test=0.1, seed=7)
    assert {p.id for p in splits.test} == {p.id for p in ranked[:5]}
    assert {p.id for p in splits.validation} == {p.id for p in ranked[5:15]}


def test_stable_across_machines_and_versions() -> None:
    # Pinned: if this changes, every user's saved splits silently change with it.
    assert as_ids(split_pairs(make_pairs(10)))[1:] == (["p4"], ["p2", "p7"])
    content_keyed = split_pairs(make_pairs(10, with_ids=False), seed=3)
    assert [p.prompt for p in content_keyed.test] == ["Question 0?", "Question 9?"]


def test_pairs_without_id_are_keyed_by_content() -> None:
    pairs = make_pairs(60, with_ids=False)
    shuffled = pairs[1::2] + pairs[::2]
    original = split_pairs(pairs, validation=0.0, test=0.5)
    reordered = split_pairs(shuffled, validation=0.0, test=0.5)
    assert {p.prompt for p in original.test} == {p.prompt for p in reordered.test}
    assert len(original.test) == 30


def test_conversation_prompts_are_keyed_too() -> None:
    conversation = ({"role": "user", "content": "Hi"},)
    pairs = [PreferencePair(prompt=conversation, chosen=f"a{i}", rejected="b") for i in range(20)]
    splits = split_pairs(pairs, validation=0.25, test=0.25)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (10, 5, 5)


def test_zero_fractions_put_everything_in_train() -> None:
    pairs = make_pairs(7)
    assert split_pairs(pairs, validation=0, test=0) == Splits(train=pairs, validation=[], test=[])


@pytest.mark.parametrize(
    ("validation", "test", "message"),
    [
        (-0.1, 0.2, "validation fraction must be between 0 and 1, got -0.1"),
        (0.1, 1.0, "test fraction must be between 0 and 1, got 1.0"),
        (math.nan, 0.2, "validation fraction must be between 0 and 1, got nan"),
        (0.5, 0.5, "validation + test fractions must leave some pairs for training, got 0.5 + 0.5"),
    ],
)
def test_bad_fractions(validation: float, test: float, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        split_pairs(make_pairs(10), validation=validation, test=test)
    assert str(raised.value) == message
