"""``rewardlab collect init / add-items / add-annotator / export`` end to end on a temporary project."""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.collect.project import Project
from rewardlab.data import load_preferences

TOKEN = re.compile(r"http://127\.0\.0\.1:8100/login\?token=([A-Za-z0-9_\-]+)")


def run(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, ["collect", *args], env={"COLUMNS": "300"})
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def items_file(path: Path, n: int, offset: int = 0) -> Path:
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(offset, offset + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_init_label_export_round_trip(tmp_path: Path) -> None:
    """init → add-annotator → labels (written as the web app writes them) → export → rewardlab's loader."""
    project = tmp_path / "proj"
    shown = run("init", str(project), "--items", str(items_file(tmp_path / "items.jsonl", 6)), "--selection", "random")
    assert "6 items" in shown
    owner_token = TOKEN.search(shown).group(1)
    opened, store = Project.open(project)
    assert opened.config.kind == "pairwise" and opened.config.selection == "random"
    assert "# How many annotators label each item.\nlabels_per_item: 1\n" in (project / "project.yaml").read_text()
    assert stat.S_IMODE((project / "secret").stat().st_mode) == 0o600 and len(opened.secret) == 32
    owner = store.annotator_for_token(owner_token)
    assert owner is not None and owner.is_owner
    assert owner_token.encode() not in (project / "collect.db").read_bytes()  # only its hash is stored

    alice = store.annotator_for_token(TOKEN.search(run("add-annotator", str(project), "alice")).group(1))
    assert alice is not None and alice.name == "alice" and not alice.is_owner
    assert 'an annotator called "alice" already exists' in run("add-annotator", str(project), "alice", ok=False)

    chosen_sides = {}
    for item in store.items()[:4]:
        side = "a" if item.metadata["preferred"] == 0 else "b"  # answer as the file's label says
        chosen_sides[item.key] = item.replies[0 if side == "a" else 1]
        assert store.record_label(
            annotator_id=alice.id,
            item_id=item.id,
            submission_id=str(uuid.uuid4()),
            payload={"choice": side, "strength": 3},
            skipped=False,
            reason="",
            shown_at=0.0,
            selection="random",
        )
    skipped = store.items()[4]
    assert store.record_label(
        annotator_id=alice.id,
        item_id=skipped.id,
        submission_id="skip-1",
        payload={},
        skipped=True,
        reason="cannot tell",
        shown_at=0.0,
        selection="random",
    )
    out = tmp_path / "labels.jsonl"
    assert "4 rows from 4 labels (1 skips left out)" in run("export", str(project), "--output", str(out))
    pairs = load_preferences(out).pairs
    assert [p.annotator for p in pairs] == ["alice"] * 4
    assert all(p.chosen.startswith("good") and p.strength == 1.0 for p in pairs)
    assert {p.group: p.chosen for p in pairs} == chosen_sides
    store.close()


def test_add_items_while_the_database_is_open(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    run("init", str(project), "--items", str(items_file(tmp_path / "a.jsonl", 3)))
    _, server_store = Project.open(project)  # as a running server holds it
    assert server_store.candidates_for(1, 1) == [1, 2, 3]
    shown = run("add-items", str(project), "--items", str(items_file(tmp_path / "b.jsonl", 4, offset=2)))
    assert "3 items added (1 already there); 6 items" in shown
    assert len(server_store.items()) == 6
    server_store.close()


def test_add_items_generated_by_a_policy(tmp_path: Path, tiny_decoder_dir: Path) -> None:
    project = tmp_path / "proj"
    run("init", str(project), "--items", str(items_file(tmp_path / "a.jsonl", 1)), "--kind", "ranking")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is 2+2?\nName a colour.\n", encoding="utf-8")
    policy = ["--prompts", str(prompts), "--policy", str(tiny_decoder_dir), "--replies", "3", "--max-new-tokens", "6"]
    assert "2 items added" in run("add-items", str(project), *policy)
    assert "0 items added (2 already there)" in run("add-items", str(project), *policy)  # same seed, same replies
    assert "2 items added" in run("add-items", str(project), *policy, "--temperature", "5")  # other replies
    _, store = Project.open(project)
    generated = [i for i in store.items() if i.source.startswith("policy:")]
    assert [i.prompt for i in generated] == ["What is 2+2?", "Name a colour."] * 2
    assert all(len(i.replies) == 3 and i.source == f"policy:{tiny_decoder_dir.name}" for i in generated)
    store.close()
    run("init", str(tmp_path / "pw"), "--items", str(items_file(tmp_path / "b.jsonl", 1)))
    shown = run("add-items", str(tmp_path / "pw"), *policy, ok=False)
    assert "--replies: a pairwise project needs 2 replies per item (got 3)" in shown


def test_kinds_and_their_settings(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"prompt": "p", "replies": ["a", "b", "c"]}) + "\n", encoding="utf-8")
    guidelines = tmp_path / "guide.md"
    guidelines.write_text("Prefer honest replies.", encoding="utf-8")
    run("init", str(tmp_path / "attr"), "--items", str(items), "--kind", "attributes", "--guidelines", str(guidelines))
    opened, store = Project.open(tmp_path / "attr")
    assert opened.config.attributes == ["helpfulness", "harmlessness"]
    assert opened.config.guidelines == "Prefer honest replies."
    store.close()
    run("init", str(tmp_path / "smol"), "--items", str(items), "--kind", "ranking", "--encoder", "smollm2",
        "--encoder-max-length", "256")  # fmt: skip
    opened, store = Project.open(tmp_path / "smol")
    assert (opened.config.encoder, opened.config.encoder_max_length) == ("smollm2", 256)
    assert opened.config.strategy == "disagreement"
    store.close()
    run("init", str(tmp_path / "epig"), "--items", str(items), "--kind", "ranking", "--strategy", "epig")
    opened, store = Project.open(tmp_path / "epig")
    assert opened.config.strategy == "epig"
    store.close()
    shown = run("init", str(tmp_path / "bad"), "--items", str(items), "--kind", "ranking", "--strategy", "guess",
                ok=False)  # fmt: skip
    assert "strategy: 'guess' is not one of disagreement, bald, batch-information, epig, flip" in shown
    shown = run("init", str(tmp_path / "short"), "--items", str(items), "--kind", "ranking", "--encoder-max-length",
                "4", ok=False)  # fmt: skip
    assert "encoder_max_length: 4 must be a whole number >= 8" in shown
    shown = run("init", str(tmp_path / "pw"), "--items", str(items), ok=False)
    assert re.search(r'items\.jsonl:1: field "replies" has 3 replies; a pairwise project needs exactly 2', shown)
    assert not (tmp_path / "pw").exists()  # a bad items file leaves no half project


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.jsonl", 2)
    project = tmp_path / "proj"
    run("init", str(project), "--items", str(items))
    assert "is not empty; pick a new folder or pass --overwrite" in run(
        "init", str(project), "--items", str(items), ok=False
    )
    run("init", str(project), "--items", str(items), "--overwrite")
    assert "is not a collect project" in run("export", str(tmp_path / "nope"), "--output", "x.jsonl", ok=False)
    shown = run("init", str(tmp_path / "k"), "--items", str(items), "--kind", "grid", ok=False)
    assert "kind: 'grid' is not one of pairwise, ranking, rating, attributes" in shown
    assert "give either --items FILE or --prompts FILE --policy NAME" in run("add-items", str(project), ok=False)
    assert "no such file" in run("init", str(tmp_path / "m"), "--items", str(tmp_path / "missing.jsonl"), ok=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "replies": ["a", "b"]}\n{"prompt": "p", "chosen": "a"}\n', encoding="utf-8")
    assert 'bad.jsonl:2: field "rejected"' in run("add-items", str(project), "--items", str(bad), ok=False)
    assert "1 items added" in run("add-items", str(project), "--items", str(bad), "--skip-bad-rows")


def test_a_hand_edited_project_yaml_is_checked_whole(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    run("init", str(project), "--items", str(items_file(tmp_path / "items.jsonl", 1)))
    config = project / "project.yaml"
    text = config.read_text().replace("labels_per_item: 1", "labels_per_item: 0")
    config.write_text(text.replace("selection: active", "selection: smart"))
    shown = run("add-annotator", str(project), "bob", ok=False)
    assert "labels_per_item: 0 must be a whole number >= 1; selection: 'smart' is not active or random" in shown
    config.write_text(text.replace("labels_per_item: 0", "label_per_item: 1"))
    assert "unknown keys label_per_item" in run("add-annotator", str(project), "bob", ok=False)


@pytest.mark.parametrize("name", ["owner", " "])
def test_reserved_or_empty_annotator_names(tmp_path: Path, name: str) -> None:
    run("init", str(tmp_path / "p"), "--items", str(items_file(tmp_path / "i.jsonl", 1)))
    assert "error: NAME:" in run("add-annotator", str(tmp_path / "p"), name, ok=False)


def test_new_link_replaces_a_login_and_the_old_one_stops_working(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    owner_old = TOKEN.search(run("init", str(project), "--items", str(items_file(tmp_path / "i.jsonl", 3)))).group(1)
    alice_old = TOKEN.search(run("add-annotator", str(project), "alice")).group(1)
    owner_new = TOKEN.search(run("new-link", str(project), "owner")).group(1)
    alice_new = TOKEN.search(run("new-link", str(project), "alice")).group(1)
    _, store = Project.open(project)
    assert store.annotator_for_token(owner_old) is None and store.annotator_for_token(alice_old) is None
    assert store.annotator_for_token(owner_new).is_owner and store.annotator_for_token(alice_new).name == "alice"
    store.close()
    assert 'no annotator called "bob"' in run("new-link", str(project), "bob", ok=False)
