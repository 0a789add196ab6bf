"""Records beyond a plain pair: ratings, graded labels, k-wise judgements, trees; and their splitting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab.data import ColumnMap, DataError, load_preferences, split_pairs
from rewardlab.data.forms import SLIGHTLY_BETTER, parse_row

DATA = Path(__file__).resolve().parents[1] / "data"
LOCATION = "data.jsonl:3"
DEFAULT = ColumnMap()


def parse(row: dict[str, Any], columns: ColumnMap = DEFAULT):
    return parse_row(row, LOCATION, columns)


def bad(row: dict[str, Any], columns: ColumnMap = DEFAULT) -> DataError:
    with pytest.raises(DataError) as raised:
        parse_row(row, LOCATION, columns)
    return raised.value


def test_ratings_scalar_and_per_attribute() -> None:
    row = {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_rating": 9, "rejected_rating": "7.5"}
    (pair,) = parse(row).pairs
    assert (pair.chosen_rating, pair.rejected_rating) == (9.0, 7.5)
    row |= {"chosen_rating": [4, 3], "rejected_rating": [2, 5]}
    (pair,) = parse(row).pairs
    assert (pair.chosen_rating, pair.rejected_rating) == ((4.0, 3.0), (2.0, 5.0))


def test_bad_ratings_and_strength_are_named() -> None:
    base = {"prompt": "q", "chosen": "a", "rejected": "b"}
    error = bad(base | {"chosen_rating": [1, 2], "rejected_rating": [1]})
    assert (error.location, error.field) == (LOCATION, "rejected_rating")
    error = bad(base | {"chosen_rating": [1, "x"], "rejected_rating": [1, 2]})
    assert error.field == "chosen_rating" and "item [1]" in str(error)
    error = bad(base | {"strength": 0.2})
    assert error.field == "strength" and "swap chosen and rejected" in str(error)


def test_graded_labels_become_strength_and_ties() -> None:
    row = {"prompt": "q", "response_a": "A", "response_b": "B"}
    cases = {
        "a-is-better": ("A", 1.0, False),
        "a-is-slightly-better": ("A", SLIGHTLY_BETTER, False),
        "tie": ("A", 0.5, True),
        "b-is-slightly-better": ("B", SLIGHTLY_BETTER, False),
        "b-is-better": ("B", 1.0, False),
    }
    for label, (chosen, strength, tie) in cases.items():
        (pair,) = parse(row | {"preference": label}).pairs
        assert (pair.chosen, pair.strength, pair.tie) == (chosen, strength, tie)
    error = bad(row | {"preference": "a-is-much-better"})
    assert error.field == "preference" and "a-is-slightly-better" in str(error)


def test_ranking_keeps_the_order_and_expands_to_all_pairs() -> None:
    parsed = parse({"prompt": "q", "responses": ["w", "x", "y"], "ranking": [2, 0, 1], "id": "r1"})
    assert parsed.ranking is not None and parsed.ranking.responses == ("y", "w", "x")
    assert [(p.chosen, p.rejected) for p in parsed.pairs] == [("y", "w"), ("y", "x"), ("w", "x")]
    assert {p.group for p in parsed.pairs} == {"r1"} and parsed.ranking.group == "r1"
    assert bad({"prompt": "q", "responses": ["w", "x"], "ranking": [0, 0]}).field == "ranking"
    assert bad({"prompt": "q", "responses": ["w", "x"]}).field == "ranking"


def test_judgements_in_lexicographic_order_with_ties() -> None:
    columns = ColumnMap.parse("responses=p1|p2|p3,judgements=preference")
    row = {"prompt": "q", "p1": "a", "p2": "b", "p3": "c", "preference": [1, 2, 0]}
    parsed = parse(row, columns)
    assert parsed.ranking is None
    assert [(p.chosen, p.rejected, p.tie) for p in parsed.pairs] == [
        ("a", "b", False),
        ("c", "a", False),
        ("b", "c", True),
    ]
    assert len({p.group for p in parsed.pairs}) == 1
    consistent = parse(row | {"preference": [2, 1, 1]}, columns)  # b > a, a > c, b > c: a full order
    assert consistent.ranking is not None and consistent.ranking.responses == ("b", "a", "c")
    judged = {(p.chosen, p.rejected) for p in consistent.pairs}
    assert judged == {(p.chosen, p.rejected) for p in consistent.ranking.pairs()}
    assert parse(row | {"preference": [1, 2, 1]}, columns).ranking is None  # a > b, c > a, b > c: a cycle
    error = bad(row | {"preference": [1, 2]}, columns)
    assert error.field == "preference" and "expected 3 judgements" in str(error)
    assert "item [2]" in str(bad(row | {"preference": [1, 2, 3]}, columns))


def test_tree_replies_share_their_branch_prefix() -> None:
    row = {
        "prompt": "Tell me about Mars.",
        "nodes": [
            {"id": "root", "text": "Mars is the fourth planet"},
            {"id": "a", "parent": "root", "text": ", red from iron oxide."},
            {"id": "b", "parent": "root", "text": ", made of cheese."},
        ],
        "comparisons": [{"chosen": "a", "rejected": "b"}],
    }
    (pair,) = parse(row).pairs
    assert pair.chosen == "Mars is the fourth planet, red from iron oxide."
    assert pair.rejected == "Mars is the fourth planet, made of cheese."
    assert "not in the tree" in str(bad(row | {"comparisons": [{"chosen": "a", "rejected": "z"}]}))
    cyclic = [{"id": "x", "parent": "y", "text": "1"}, {"id": "y", "parent": "x", "text": "2"}]
    assert "cycle" in str(bad(row | {"nodes": cyclic, "comparisons": [{"chosen": "x", "rejected": "y"}]}))


def test_groups_are_never_split_apart() -> None:
    rows = [{"prompt": f"q{i}", "responses": ["a", "b", "c", "d"], "ranking": [3, 1, 0, 2]} for i in range(60)]
    parsed = [parse_row(r, f"f:{i}", ColumnMap()) for i, r in enumerate(rows)]
    pairs = [p for x in parsed for p in x.pairs]
    splits = split_pairs(pairs, rankings=[x.ranking for x in parsed], validation=0.1, test=0.2)
    where = {}
    for name in ("train", "validation", "test"):
        for p in getattr(splits, name):
            assert where.setdefault(p.group, name) == name
        assert {r.group for r in getattr(splits, f"{name}_rankings")} == {p.group for p in getattr(splits, name)}
    assert 0.15 < len(splits.test) / len(pairs) < 0.25


def test_real_files_load_in_every_form() -> None:
    """The shared data files read with a column map and nothing else."""
    tulu = load_preferences(
        DATA / "tulu1-human-eval.jsonl",
        columns=ColumnMap.parse("response_a=completion_a,response_b=completion_b,annotator=evaluator"),
        skip_bad_rows=True,  # a few judgements call one of two identical completions better
    )
    assert len(tulu.pairs) + len(tulu.skipped) == 1150 and len(tulu.skipped) < 20
    assert all("identical" in str(e) for e in tulu.skipped)
    assert {p.strength for p in tulu.pairs} == {0.5, SLIGHTLY_BETTER, 1.0}
    qa = load_preferences(
        DATA / "finegrained-rlhf-qa-feedback-dev.json",
        columns=ColumnMap.parse(
            "prompt=question,responses=prediction 1|prediction 2|prediction 3|prediction 4,judgements=preference"
        ),
    )
    assert len({p.group for p in qa.pairs}) == 500 and len(qa.pairs) <= 3000
    assert len(qa.rankings) == 298  # questions whose six judgements have no tie and no cycle
    uf = load_preferences(
        DATA / "ultrafeedback-binarized-200.jsonl",
        columns=ColumnMap.parse("chosen_rating=metadata.score_chosen,rejected_rating=metadata.score_rejected"),
        skip_bad_rows=True,  # a few rows have the same text as chosen and rejected
    )
    assert len(uf.pairs) + len(uf.skipped) == 200 and all("identical" in str(e) for e in uf.skipped)
    assert all(p.chosen_rating is not None and p.chosen_rating >= p.rejected_rating for p in uf.pairs)


def test_kwise_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ranked.jsonl"
    rows = [{"prompt": f"q{i}", "responses": ["a", "b", "c"], "ranking": [1, 2, 0]} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    loaded = load_preferences(path)
    assert len(loaded.rankings) == 3 and len(loaded.pairs) == 9
