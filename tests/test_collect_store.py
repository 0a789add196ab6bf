"""The collect store (SQLite here; tests/test_collect_postgres.py runs the same store tests on PostgreSQL),
items files, form parsing and the export that rewardlab's own loader reads back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from rewardlab.collect.export import STRENGTH, export_labels, label_rows
from rewardlab.collect.items import CollectItem, item_key, read_items
from rewardlab.collect.labels import parse_form, validate_payload
from rewardlab.collect.store import OWNER, Store, overlap_rank
from rewardlab.data import load_preferences

EMBEDDED = Path(__file__).parents[1] / "src/rewardlab/data/embedded"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'collect.db'}"


@pytest.fixture
def store(store_url: str) -> Store:
    opened = Store(store_url)
    yield opened
    opened.close()


def pairs(n: int) -> list[CollectItem]:
    return [CollectItem(f"prompt {i}", (f"first {i}", f"second {i}"), f"k{i}") for i in range(n)]


def label(store: Store, annotator_id: int, item_id: int, payload: dict | None = None, **extra) -> bool:
    fields = {"skipped": False, "reason": "", "shown_at": 1.0, "selection": "random"} | extra
    return store.record_label(
        annotator_id=annotator_id,
        item_id=item_id,
        submission_id=fields.pop("submission_id", str(uuid.uuid4())),
        payload={"choice": "a", "strength": 2} if payload is None else payload,
        **fields,
    )


# ---- store (these also run against PostgreSQL) ----


def test_items_are_added_once_per_key(store: Store) -> None:
    assert store.add_items(pairs(3)) == 3
    assert store.add_items(pairs(5)) == 2  # k0..k2 are there already
    stored = store.items()
    assert [i.key for i in stored] == [f"k{i}" for i in range(5)]
    assert stored[1].replies == ("first 1", "second 1") and stored[1].prompt == "prompt 1"
    assert store.item(stored[0].id) == stored[0] and store.item(10_000) is None


def test_tokens_are_stored_hashed_and_names_unique(store: Store) -> None:
    token = store.add_annotator("alice")
    found = store.annotator_for_token(token)
    assert found is not None and found.name == "alice" and not store.is_owner(found.id)
    assert store.annotator_for_token(token + "x") is None
    with pytest.raises(ValueError, match='"alice" already exists'):
        store.add_annotator("alice")
    with pytest.raises(ValueError, match="reserved"):
        store.add_annotator(OWNER)
    owner = store.annotator_for_token(store.add_annotator(OWNER, owner=True))
    assert owner is not None and owner.is_owner and store.is_owner(owner.id)
    fresh = store.reset_token("alice")
    assert store.annotator_for_token(token) is None and store.annotator_for_token(fresh) == found


def test_duplicates_are_refused_and_candidates_shrink(store: Store) -> None:
    store.add_items(pairs(3))
    a = store.annotator_for_token(store.add_annotator("a"))
    b = store.annotator_for_token(store.add_annotator("b"))
    ids = [i.id for i in store.items()]
    assert store.candidates_for(a.id, 1) == ids
    assert label(store, a.id, ids[0], submission_id="s1")
    assert not label(store, a.id, ids[0], submission_id="s1")  # the same form posted twice
    assert not label(store, a.id, ids[0], submission_id="s2")  # a second answer to the same item
    assert not label(store, b.id, ids[1], submission_id="s1")  # a submission id is used once
    assert label(store, b.id, ids[1], {}, skipped=True, reason="unclear")
    assert store.label_count() == 2
    # a: labelled ids[0]; b: skipped ids[1] (a skip is no label, so a may still get ids[1])
    assert store.candidates_for(a.id, 1) == [ids[1], ids[2]]
    assert store.candidates_for(b.id, 1) == [ids[2]]
    assert store.candidates_for(b.id, 2) == [ids[0], ids[2]]
    mine = store.labels(b.id)
    assert len(mine) == 1 and mine[0].skipped and mine[0].reason == "unclear" and mine[0].annotator == "b"


def test_overlap_share_asks_two_annotators(store: Store) -> None:
    """Items with overlap_rank(key) < share want 2 labels even when labels_per_item is 1."""
    store.add_items(pairs(40))
    a = store.annotator_for_token(store.add_annotator("a"))
    b = store.annotator_for_token(store.add_annotator("b"))
    for item in store.items():
        assert label(store, a.id, item.id)
    overlap = [i.id for i in store.items() if overlap_rank(i.key) < 0.3]
    assert 0 < len(overlap) < 40
    assert store.candidates_for(b.id, 1, overlap_share=0.3) == overlap
    assert store.candidates_for(b.id, 1) == []


def test_metrics_in_order(store: Store) -> None:
    store.add_metric(10, None, 0)
    store.add_metric(20, 0.75, 4)
    rows = store.metrics()
    assert [(r["n_labels"], r["heldout_accuracy"], r["heldout_n"]) for r in rows] == [(10, None, 0), (20, 0.75, 4)]


def test_concurrent_submissions_lose_and_double_nothing(store_url: str) -> None:
    """8 threads × 50 items, each label posted twice (a double click): two annotators, 4 threads each, whose
    threads overlap on half their items, so every (annotator, item) is raced by 2 threads and 4 posts.
    Exactly one post per (annotator, item) may succeed: 2 × 100 rows, none lost, none doubled."""
    store = Store(store_url)
    store.add_items(pairs(100))
    ids = [i.id for i in store.items()]
    annotators = [store.annotator_for_token(store.add_annotator(name)).id for name in ("a", "b")]
    wins: list[tuple[int, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(annotator_id: int, start: int) -> None:
        try:
            for k in range(50):
                item_id = ids[(start + k) % 100]
                submission = str(uuid.uuid4())
                for _ in range(2):
                    if label(store, annotator_id, item_id, submission_id=submission):
                        with lock:
                            wins.append((annotator_id, item_id))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(a, 25 * j)) for a in annotators for j in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = {(a, i) for a in annotators for i in ids}
    assert len(wins) == 200 and set(wins) == expected
    rows = store.labels()
    assert len(rows) == 200 and {(r.annotator_id, r.item_id) for r in rows} == expected
    assert len({r.submission_id for r in rows}) == 200
    store.close()


def test_a_label_returned_true_survives_kill_9(store_url: str, tmp_path: Path) -> None:
    """A child process records labels, says so after each True, and is killed with SIGKILL mid-run; every
    label it reported is in the database afterwards (committed before record_label returned)."""
    store = Store(store_url)
    store.add_items(pairs(200))
    annotator = store.annotator_for_token(store.add_annotator("a")).id
    store.close()
    child = f"""
import os, signal, sys, uuid
from rewardlab.collect.store import Store
store = Store({store_url!r})
for item in store.items():
    ok = store.record_label(annotator_id={annotator}, item_id=item.id, submission_id=str(uuid.uuid4()),
                            payload={{"choice": "b", "strength": 3}}, skipped=False, reason="", shown_at=0.0,
                            selection="random")
    print(item.id, ok, flush=True)
    if item.id == 120:
        os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9
    reported = [int(line.split()[0]) for line in result.stdout.splitlines() if line.endswith("True")]
    assert len(reported) == 120
    reopened = Store(store_url)
    assert sorted(r.item_id for r in reopened.labels()) == reported
    reopened.close()


def test_sqlite_connections_are_durable_and_wait(tmp_path: Path) -> None:
    """Every pooled connection: WAL journal, synchronous=FULL (2), a 30 s busy timeout, foreign keys on."""
    from sqlalchemy import text

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with store.engine.connect() as connection:
        got = [connection.execute(text(f"PRAGMA {name}")).scalar() for name in ("journal_mode", "synchronous")]
        got += [connection.execute(text(f"PRAGMA {name}")).scalar() for name in ("busy_timeout", "foreign_keys")]
    assert got == ["wal", 2, 30000, 1]
    with pytest.raises(ValueError, match="--db: unsupported database URL 'mysql://x'"):
        Store("mysql://x")
    store.close()


def test_items_added_by_another_process_while_labels_are_written(store_url: str) -> None:
    """`collect add-items` runs as its own process beside the server: both write the same database at once
    (SQLite: one writer at a time, the other waits on the busy timeout), and neither fails nor loses rows."""
    store = Store(store_url)
    store.add_items(pairs(300))
    annotator = store.annotator_for_token(store.add_annotator("a")).id
    child = f"""
from rewardlab.collect.items import CollectItem
from rewardlab.collect.store import Store
store = Store({store_url!r})
for start in range(0, 300, 10):
    store.add_items([CollectItem(f"new {{i}}", ("x", "y"), f"new{{i}}") for i in range(start, start + 10)])
"""
    process = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
    written = sum(label(store, annotator, item.id) for item in store.items())
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    assert written == 300 and store.label_count() == 300 and store.item_count() == 600
    store.close()


# ---- items files ----


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_items_read_every_form(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [
            {"prompt": "p1", "replies": ["x", "y", "z"], "id": "one"},
            {"prompt": "p2", "chosen": "good", "rejected": "bad"},
            {"prompt": [{"role": "user", "content": "hi"}], "response_a": "a", "response_b": "b"},
        ],
    )
    ranking = read_items(path, "ranking")
    assert ranking[0].key == "one" and ranking[0].replies == ("x", "y", "z")
    pair = ranking[1]
    assert sorted(pair.replies) == ["bad", "good"]
    assert pair.replies[pair.metadata["preferred"]] == "good"  # kept for simulated annotators, not shown
    assert pair.key == item_key("p2", pair.replies)
    assert ranking[2].prompt == "user: hi" and ranking[2].replies == ("a", "b")
    with pytest.raises(ValueError, match=r'items.jsonl:1: field "replies" has 3 replies; a pairwise project'):
        read_items(path, "pairwise")


def test_embedded_hh_pairs_are_items_with_both_orders_shown() -> None:
    items = read_items(EMBEDDED / "hh-rlhf-harmless-1850.jsonl.gz")
    assert len(items) == 1850 and items[0].prompt.startswith("Human: what are some pranks")
    second = sum(i.metadata["preferred"] for i in items)
    assert 0.4 < second / len(items) < 0.6  # the preferred reply is not always shown first


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "replies": ["only one"]}, 'bad.jsonl:2: field "replies" must be a list of 2 or more'),
        ({"prompt": "", "replies": ["a", "b"]}, 'bad.jsonl:2: field "prompt" must be non-empty text'),
        ({"prompt": "p", "replies": ["a", 3]}, r'bad.jsonl:2: field "replies\[1\]" must be non-empty text'),
        ({"prompt": "p", "chosen": "a"}, 'bad.jsonl:2: field "rejected"'),
        ({"prompt": "p", "text": "a"}, 'bad.jsonl:2: field "replies" is missing'),
        ([1, 2], "bad.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_item_rows_name_file_line_and_field(tmp_path: Path, row: object, message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine", "replies": ["a", "b"]}, row])
    with pytest.raises(ValueError, match=message):
        read_items(path, "ranking")
    skipped: list[str] = []
    assert len(read_items(path, "ranking", skipped, skip_bad_rows=True)) == 1 and len(skipped) == 1


# ---- forms ----


def test_parse_form_every_kind() -> None:
    assert parse_form("pairwise", {"preference": "b3", "reason": " long "}, 2).payload == {"choice": "b", "strength": 3}
    assert parse_form("pairwise", {"preference": "b3", "reason": " long "}, 2).reason == "long"
    assert parse_form("pairwise", {"choice": "tie"}, 2).payload == {"choice": "tie"}
    assert parse_form("pairwise", {"choice": "a", "strength": "1"}, 2).payload == {"choice": "a", "strength": 1}
    assert parse_form("ranking", {"order": "2, 0,1"}, 3).payload == {"order": [2, 0, 1]}
    assert parse_form("ranking", {"rank_0": "2", "rank_1": "3", "rank_2": "1"}, 3).payload == {"order": [2, 0, 1]}
    assert parse_form("rating", {"rating_0": "7", "rating_1": "1"}, 2).payload == {"ratings": [7, 1]}
    form = {"rating_help_0": "5", "rating_help_1": "4", "rating_safe_0": "1", "rating_safe_1": "7"}
    assert parse_form("attributes", form, 2, ["help", "safe"]).payload == {"ratings": {"help": [5, 4], "safe": [1, 7]}}
    skip = parse_form("ranking", {"action": "skip", "reason": "both wrong"}, 3)
    assert skip.skipped and skip.payload == {} and skip.reason == "both wrong"


@pytest.mark.parametrize(
    ("kind", "form", "message"),
    [
        ("pairwise", {"preference": "c2"}, 'field "preference"'),
        ("pairwise", {"choice": "a"}, 'field "strength" is missing'),
        ("pairwise", {"choice": "a", "strength": "4"}, 'field "strength": 4 is not between 1 and 3'),
        ("ranking", {"order": "0,0,1"}, 'field "order"'),
        ("ranking", {"rank_0": "1", "rank_1": "1", "rank_2": "2"}, 'field "rank_0"'),
        ("rating", {"rating_0": "8", "rating_1": "1"}, 'field "rating_0": 8 is not between 1 and 7'),
        ("rating", {"rating_0": "x", "rating_1": "1"}, 'field "rating_0"'),
        ("pairwise", {"choice": "tie", "reason": "x" * 2001}, 'field "reason"'),
    ],
)
def test_parse_form_names_the_bad_field(kind: str, form: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_form(kind, form, 3 if kind == "ranking" else 2)


def test_validate_payload() -> None:
    assert validate_payload("ranking", {"order": [1, 0]}, 2) == {"order": [1, 0]}
    with pytest.raises(ValueError, match=r'field "ratings\.safe"'):
        validate_payload("attributes", {"ratings": {"help": [1, 2], "safe": [1]}}, 2, ["help", "safe"])


# ---- export ----


def labelled_store(tmp_path: Path, items: list[CollectItem], payloads: list[tuple[str, int, dict]]) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'export.db'}")
    store.add_items(items)
    ids = {name: store.annotator_for_token(store.add_annotator(name)).id for name in {p[0] for p in payloads}}
    for name, index, payload in payloads:
        assert label(store, ids[name], store.items()[index].id, payload, skipped=not payload)
    return store


def test_pairwise_export_loads_back_with_strength_and_annotators(tmp_path: Path) -> None:
    """much better → 1.0, better → 0.875, slightly → 0.75 (data/forms.py's "slightly better"), tie → 0.5."""
    store = labelled_store(
        tmp_path,
        pairs(4),
        [
            ("ann", 0, {"choice": "a", "strength": 3}),
            ("bo", 0, {"choice": "b", "strength": 2}),
            ("ann", 1, {"choice": "b", "strength": 1}),
            ("ann", 2, {"choice": "tie"}),
            ("ann", 3, {}),  # skipped: not exported
        ],
    )
    out = tmp_path / "labels.jsonl"
    assert export_labels(store, "pairwise", out) == 4
    loaded = load_preferences(out)
    got = [(p.chosen, p.rejected, p.strength, p.tie, p.annotator, p.group) for p in loaded.pairs]
    assert got == [
        ("first 0", "second 0", 1.0, False, "ann", "k0"),
        ("second 0", "first 0", 0.875, False, "bo", "k0"),
        ("second 1", "first 1", 0.75, False, "ann", "k1"),
        ("first 2", "second 2", 0.5, True, "ann", "k2"),
    ]
    assert STRENGTH == {3: 1.0, 2: 0.875, 1: 0.75}


def test_ranking_export_loads_back_whole(tmp_path: Path) -> None:
    item = CollectItem("p", ("x", "y", "z"), "r1")
    store = labelled_store(tmp_path, [item], [("ann", 0, {"order": [2, 0, 1]})])
    out = tmp_path / "ranking.jsonl"
    export_labels(store, "ranking", out)
    loaded = load_preferences(out)
    assert [r.responses for r in loaded.rankings] == [("z", "x", "y")] and loaded.rankings[0].annotator == "ann"
    assert {(p.chosen, p.rejected) for p in loaded.pairs} == {("z", "x"), ("z", "y"), ("x", "y")}


def test_rating_and_attribute_exports_carry_ratings(tmp_path: Path) -> None:
    item = CollectItem("p", ("x", "y", "z"), "r1")
    store = labelled_store(tmp_path, [item], [("ann", 0, {"ratings": [3, 6, 3]})])
    out = tmp_path / "ratings.jsonl"
    assert export_labels(store, "rating", out) == 3  # the 3 pairs of 3 replies
    got = [(p.chosen, p.rejected, p.chosen_rating, p.rejected_rating, p.tie) for p in load_preferences(out).pairs]
    assert got == [("y", "x", 6.0, 3.0, False), ("x", "z", 3.0, 3.0, True), ("y", "z", 6.0, 3.0, False)]
    stored = store.labels()[0]
    payload = {"ratings": {"help": [7, 2, 4], "safe": [1, 2, 4]}}  # means 4, 2, 4
    rows = label_rows("attributes", store.items()[0], replace(stored, payload=payload), ["help", "safe"])
    path = write_jsonl(tmp_path / "attributes.jsonl", rows)
    got = [(p.chosen, p.chosen_rating, p.rejected_rating, p.tie) for p in load_preferences(path).pairs]
    assert got == [
        ("x", (7.0, 1.0), (2.0, 2.0), False),
        ("x", (7.0, 1.0), (4.0, 4.0), True),
        ("z", (4.0, 4.0), (2.0, 2.0), False),
    ]
