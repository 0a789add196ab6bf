"""Label Studio and Argilla JSON: round trips through a real store, files as those tools write them, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli.base import app
from rewardlab.collect.interop import (
    argilla_user_id,
    export_records,
    import_into,
    read_argilla,
    read_import,
    read_label_studio,
    write_json,
)
from rewardlab.collect.items import CollectItem
from rewardlab.collect.store import Store

ATTRIBUTES = ("helpfulness", "harmlessness")

# per kind: three answers (annotator, item index, payload), for items with 3 replies (pairwise: 2)
ANSWERS = {
    "pairwise": [
        ("ann", 0, {"choice": "a", "strength": 3}),
        ("bob", 0, {"choice": "b", "strength": 1}),
        ("ann", 1, {"choice": "tie"}),
    ],
    "ranking": [("ann", 0, {"order": [2, 0, 1]}), ("bob", 0, {"order": [0, 1, 2]}), ("ann", 1, {"order": [1, 2, 0]})],
    "rating": [
        ("ann", 0, {"ratings": [7, 1, 4]}),
        ("bob", 0, {"ratings": [2, 2, 5]}),
        ("ann", 1, {"ratings": [1, 3, 6]}),
    ],
    "attributes": [
        ("ann", 0, {"ratings": {"helpfulness": [7, 1, 4], "harmlessness": [5, 5, 5]}}),
        ("bob", 0, {"ratings": {"helpfulness": [2, 2, 3], "harmlessness": [1, 7, 2]}}),
        ("ann", 1, {"ratings": {"helpfulness": [1, 3, 6], "harmlessness": [6, 4, 2]}}),
    ],
}


def _store(path: Path) -> Store:
    return Store(f"sqlite:///{path}")


def _filled(tmp_path: Path, kind: str) -> Store:
    """Three items, two annotators, three answers, one skip with a reason and one answer with a reason."""
    store = _store(tmp_path / "source.db")
    n = 2 if kind == "pairwise" else 3
    store.add_items(
        [CollectItem(f"prompt {i} <b>&", tuple(f"reply {i}.{j}" for j in range(n)), key=f"k{i}") for i in range(3)]
    )
    ids = [item.id for item in store.items()]
    for name in ("ann", "bob"):
        store.add_annotator(name)
    who = {a.name: a.id for a in store.annotators()}
    for n_label, (name, item, payload) in enumerate(ANSWERS[kind]):
        reason = "clearer" if n_label == 0 else ""
        store.record_label(
            annotator_id=who[name], item_id=ids[item], submission_id=f"s{n_label}", payload=payload,
            skipped=False, reason=reason, shown_at=1_700_000_000.0 + n_label, selection="active",
        )  # fmt: skip
    store.record_label(
        annotator_id=who["bob"], item_id=ids[2], submission_id="skip", payload={}, skipped=True,
        reason="off topic", shown_at=1_700_000_010.0, selection="random",
    )  # fmt: skip
    return store


def _content(store: Store) -> set[tuple]:
    keys = {item.id: item.key for item in store.items()}
    return {
        (keys[label.item_id], label.annotator, json.dumps(label.payload, sort_keys=True), label.skipped, label.reason)
        for label in store.labels()
    }


@pytest.mark.parametrize("fmt", ["label-studio", "argilla"])
@pytest.mark.parametrize("kind", ["pairwise", "ranking", "rating", "attributes"])
def test_round_trip_keeps_every_label(tmp_path: Path, kind: str, fmt: str) -> None:
    """export → file → import into an empty store: the same items, and the same labels (annotator,
    payload, skip, reason); importing the file again adds nothing."""
    attributes = ATTRIBUTES if kind == "attributes" else ()
    source = _filled(tmp_path, kind)
    path = tmp_path / f"export-{fmt}.json"
    write_json(path, export_records(source.items(), source.labels(), fmt, kind, attributes))
    target = _store(tmp_path / "target.db")
    imported = read_import(path, fmt, kind, attributes)
    assert import_into(target, imported) == (3, 4)
    assert [(i.key, i.prompt, i.replies) for i in target.items()] == [
        (i.key, i.prompt, i.replies) for i in source.items()
    ]
    assert _content(target) == _content(source)
    assert {label.selection for label in target.labels()} == {"imported"}
    if fmt == "label-studio":  # the time shown is kept (created_at minus lead_time)
        assert sorted(label.shown_at for label in target.labels()) == pytest.approx(
            sorted(label.shown_at for label in source.labels()), abs=1e-3
        )
    assert import_into(target, read_import(path, fmt, kind, attributes)) == (0, 0)


def test_label_studio_as_its_pairwise_template_writes_it(tmp_path: Path) -> None:
    """A task as Label Studio exports it: completed_by a user id, a Pairwise result without strength
    (read as "better", 2), a cancelled annotation (a skip), an annotation's time from lead_time."""
    task = {
        "id": 17,
        "data": {"prompt": "Capital of France?", "answer1": "Paris.", "answer2": "Lyon."},
        "annotations": [
            {
                "id": 5, "completed_by": 3, "was_cancelled": False, "lead_time": 4.5,
                "created_at": "2021-03-09T22:16:08.728353Z",
                "result": [{"id": "x1", "type": "pairwise", "from_name": "pw", "to_name": "answer1,answer2",
                            "value": {"selected": "left"}}],
            },
            {"id": 6, "completed_by": {"id": 4, "email": "eve@example.org"}, "was_cancelled": True, "result": []},
        ],
        "predictions": [],
    }  # fmt: skip
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([task]))
    got = read_label_studio(path, "pairwise", users={"3": "carol"})
    assert got.items[0].replies == ("Paris.", "Lyon.")
    first, second = got.labels
    assert (first.annotator, first.payload, first.skipped) == ("carol", {"choice": "a", "strength": 2}, False)
    assert first.created_at - first.shown_at == pytest.approx(4.5)
    assert first.created_at == pytest.approx(1615328168.728353)
    assert (second.annotator, second.payload, second.skipped) == ("eve@example.org", {}, True)


def test_argilla_statuses_and_v1_ranking(tmp_path: Path) -> None:
    """Draft responses are not labels; discarded ones are skips; v1 ``{"value", "rank"}`` rankings are
    read by rank; user ids without a name stay as the name."""
    record = {
        "id": "rec-1",
        "fields": {"prompt": "p", "reply_1": "one", "reply_2": "two", "reply_3": "three"},
        "metadata": {},
        "responses": {
            "ranking": [
                {"value": [{"value": "reply_3", "rank": 1}, {"value": "reply_1", "rank": 2},
                           {"value": "reply_2", "rank": 3}], "user_id": "u1", "status": "submitted"},
                {"value": ["reply_2", "reply_1", "reply_3"], "user_id": "u2", "status": "draft"},
                {"value": ["reply_1", "reply_2", "reply_3"], "user_id": "u3"},
            ],
            "reason": [{"value": "all wrong", "user_id": "u4", "status": "discarded"}],
        },
    }  # fmt: skip
    path = tmp_path / "argilla.json"
    path.write_text(json.dumps([record]))
    got = read_argilla(path, "ranking")
    assert got.items[0].key == "rec-1"
    labels = {label.annotator: label for label in got.labels}
    assert sorted(labels) == ["u1", "u3", "u4"]
    assert labels["u1"].payload == {"order": [2, 0, 1]}
    assert labels["u3"].payload == {"order": [0, 1, 2]}
    assert labels["u4"].skipped and labels["u4"].reason == "all wrong"


def test_argilla_export_names_users_by_derived_ids(tmp_path: Path) -> None:
    """Argilla wants user ids: they are UUIDs made from the names, and the names ride in the metadata."""
    store = _filled(tmp_path, "pairwise")
    records = export_records(store.items(), store.labels(), "argilla", "pairwise")
    answers = records[0]["responses"]["preference"]
    assert {a["user_id"] for a in answers} == {argilla_user_id("ann"), argilla_user_id("bob")}
    assert json.loads(records[0]["metadata"]["rewardlab_users"])[argilla_user_id("ann")] == "ann"
    assert {a["value"] for a in answers} == {"a_much_better", "b_slightly_better"}


@pytest.mark.parametrize(
    ("source", "kind", "record", "message"),
    [
        (
            "label-studio", "pairwise",
            {"data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": [
                {"completed_by": 1, "result": [{"type": "pairwise", "value": {"selected": "up"}}]}]},
            'record 1: field "annotations[0].result[0].value.selected" must be "left" or "right"',
        ),
        (
            "label-studio", "ranking",
            {"data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": [
                {"completed_by": 1, "result": [{"type": "ranker", "value": {"ranker": {"r": ["answer1"]}}}]}]},
            'record 1: field "annotations[0].result[0].value.ranker" must rank each of the 2 replies once',
        ),
        (
            "label-studio", "rating",
            {"data": {"prompt": "p", "answer1": "a"}, "annotations": []},
            'record 1: field "data" must hold replies numbered from 1',
        ),
        (
            "argilla", "rating",
            {"fields": {"prompt": "p", "reply_1": "a", "reply_2": "b"}, "responses": {
                "rating_1": [{"value": 3, "user_id": "u"}], "rating_2": [{"value": 9, "user_id": "u"}]}},
            'record 1: field "responses (user u).rating_2" must be a whole rating from 1 to 7, got 9',
        ),
        (
            "argilla", "pairwise",
            {"fields": {"prompt": "p", "reply_1": "a", "reply_2": "b"}, "responses": {
                "preference": [{"value": "a_better", "user_id": "u", "status": "pending"}]}},
            'record 1: field "responses.preference[0].status" must be "submitted", "discarded" or "draft"',
        ),
    ],
)  # fmt: skip
def test_bad_input_names_file_record_and_field(
    tmp_path: Path, source: str, kind: str, record: dict, message: str
) -> None:
    """The error names the file, the record's index and the field; record 0 is fine, record 1 is bad."""
    good = (
        {"data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": []}
        if source == "label-studio"
        else {"fields": {"prompt": "p", "reply_1": "a", "reply_2": "b"}}
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, record]))
    with pytest.raises(ValueError) as error:
        read_import(path, source, kind)
    assert str(error.value).startswith(f"{path}: {message}")


def test_not_a_list_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "obj.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="expected a JSON list of records"):
        read_import(path, "argilla", "pairwise")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_import(tmp_path / "none.json", "label-studio", "pairwise")
    with pytest.raises(ValueError, match="--from must be one of"):
        read_import(path, "prodigy", "pairwise")


def test_cli_export_then_import(tmp_path: Path) -> None:
    """``collect export --format label-studio`` and ``collect import --from label-studio`` into another
    project: the second project holds the same labels."""
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"prompt": f"q{i}", "replies": [f"x{i}", f"y{i}"]}) + "\n" for i in range(3)))
    runner = CliRunner()
    for name in ("one", "two"):
        shown = runner.invoke(app, ["collect", "init", str(tmp_path / name), "--items", str(items)])
        assert shown.exit_code == 0, shown.output
    source = Store(f"sqlite:///{tmp_path / 'one' / 'collect.db'}")
    source.add_annotator("ann")
    who = {a.name: a.id for a in source.annotators()}["ann"]
    first = source.items()[0].id
    source.record_label(
        annotator_id=who, item_id=first, submission_id="s", payload={"choice": "b", "strength": 2},
        skipped=False, reason="", shown_at=1.0, selection="random",
    )  # fmt: skip
    out = tmp_path / "ls.json"
    shown = runner.invoke(
        app, ["collect", "export", str(tmp_path / "one"), "--format", "label-studio", "--output", str(out)]
    )
    assert shown.exit_code == 0, shown.output
    shown = runner.invoke(app, ["collect", "import", str(tmp_path / "two"), str(out), "--from", "label-studio"])
    assert shown.exit_code == 0, shown.output
    assert "0 new items (3 already there), 1 new labels" in shown.output
    target = Store(f"sqlite:///{tmp_path / 'two' / 'collect.db'}")
    assert _content(target) == _content(source)
    shown = runner.invoke(app, ["collect", "export", str(tmp_path / "one"), "--format", "csv", "--output", str(out)])
    assert shown.exit_code != 0 and "--format must be one of" in shown.output
