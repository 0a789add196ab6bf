"""The optional ``consistency`` field (CREAM's per-pair weight) read from JSONL and CSV, refused when it is not
a number in [0, 1] with the file, line and field named, and the online loop's pairs files read back as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.data.loading import load_preferences
from rewardlab.data.records import DataError, PreferencePair
from rewardlab.data.schema import ColumnMap
from rewardlab.online.rounds import _pair_row


def test_jsonl_and_csv_carry_consistency(tmp_path: Path) -> None:
    jsonl = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Q?", "chosen": "yes", "rejected": "no", "consistency": 0.625},
        {"prompt": "Q?", "chosen": "maybe", "rejected": "no", "consistency": 1},
        {"prompt": "Q?", "chosen": "sure", "rejected": "no"},
    ]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [p.consistency for p in load_preferences(jsonl).pairs] == [0.625, 1.0, None]
    csv = tmp_path / "pairs.csv"
    csv.write_text("prompt,chosen,rejected,consistency\nQ?,yes,no,0\nQ?,maybe,no,\n", encoding="utf-8")
    assert [p.consistency for p in load_preferences(csv).pairs] == [0.0, None]  # an empty cell is absent
    mapped = tmp_path / "mapped.jsonl"
    mapped.write_text(json.dumps({"prompt": "Q?", "chosen": "a", "rejected": "b", "meta": {"agree": 0.25}}) + "\n")
    assert load_preferences(mapped, columns=ColumnMap(consistency="meta.agree")).pairs[0].consistency == 0.25


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, 'field "consistency": is 1.5; it is how far two judges agree'),
        (-0.1, 'field "consistency": is -0.1; it is how far two judges agree'),
        ("high", "field \"consistency\": is text ('high') (expected a finite number)"),
        (True, 'field "consistency": is a boolean (true) (expected a finite number)'),
    ],
)
def test_a_bad_consistency_names_file_line_and_field(tmp_path: Path, value: object, reason: str) -> None:
    path = tmp_path / "pairs.jsonl"
    good = {"prompt": "Q?", "chosen": "yes", "rejected": "no"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "consistency": value}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_preferences(path)
    assert str(raised.value).startswith(f"{path}:2: {reason}")
    assert raised.value.field == "consistency" and raised.value.location == f"{path}:2"


def test_online_pairs_rows_read_back_with_their_consistency(tmp_path: Path) -> None:
    """What the loop writes to round-N/pairs.jsonl is data the reader takes: same replies, strength, ratings
    and consistency (None stays absent)."""
    pairs = [
        PreferencePair("Q?", "yes", "no", strength=0.75, chosen_rating=2.0, rejected_rating=0.5, consistency=0.5),
        PreferencePair("R?", "a", "b", strength=0.6, chosen_rating=1.0, rejected_rating=0.0, id="round-1/prompt-1/0-1"),
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(_pair_row(p)) + "\n" for p in pairs), encoding="utf-8")
    read = load_preferences(path).pairs
    for before, after in zip(pairs, read, strict=True):
        for name in ("prompt", "chosen", "rejected", "strength", "chosen_rating", "rejected_rating", "consistency"):
            assert getattr(after, name) == getattr(before, name), name
