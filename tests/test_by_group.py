"""Accuracy per annotator and per group (``rewardlab eval --by``), the clustering scores (purity, ARI),
and the two-group construction from real pairs (``rewardlab data groups``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_pairs, write_jsonl
from typer.testing import CliRunner

import rewardlab
from rewardlab import cli
from rewardlab.data import PreferencePair, load_preferences
from rewardlab.data.refusals import refuses
from rewardlab.data.user_groups import MAJORITY, MINORITY, build_user_groups
from rewardlab.evaluate.by_group import NONE, accuracy_by, adjusted_rand_index, purity
from rewardlab.evaluate.metrics import pairwise_correct, wilson_interval
from rewardlab.evaluate.run import evaluate_data
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("by_group") / "model")


def test_adjusted_rand_index_known_values():
    """true [0,0,1,1], predicted [0,0,1,2]: Σ C(n_ij,2) = C(2,2) = 1; rows Σ C(a_i,2) = 1 + 1 = 2;
    columns Σ C(b_j,2) = 1; E = 2·1/C(4,2) = 1/3; ARI = (1 − 1/3) / (½(2 + 1) − 1/3) = (2/3)/(7/6) = 4/7.
    [0,0,1,1] vs [0,1,0,1]: Σ C(n_ij,2) = 0, E = 2·2/6 = 2/3, ARI = (0 − 2/3)/(2 − 2/3) = −1/2.
    (scikit-learn's documented examples give the same: 0.57 and −0.5.)"""
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand_index(["a", "a", "b", "b"], [7, 7, 3, 3]) == 1.0  # a renaming
    assert adjusted_rand_index([0, 0, 0], [1, 1, 1]) == 1.0  # both one cluster: sklearn's convention
    with pytest.raises(ValueError, match="equal"):
        adjusted_rand_index([0, 1], [0])


def test_ari_near_zero_for_random_and_purity_known_value():
    """A random clustering of 2,000 users in two groups scores ARI ≈ 0 (chance-corrected) while purity
    stays ≥ the larger group's share; purity of [0,0,0,1] against [0,0,1,1] is (2 + 1)/4 = 3/4."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, 2000).tolist()
    assert abs(adjusted_rand_index(true, rng.integers(0, 2, 2000).tolist())) < 0.01
    assert purity([0, 0, 1, 1], [0, 0, 0, 1]) == 0.75
    assert purity(true, [0] * 2000) == max(true.count(0), true.count(1)) / 2000


def _pair(annotator: str | None, tie: bool = False, group: str | None = None) -> PreferencePair:
    return PreferencePair("q", "a", "b", tie=tie, annotator=annotator, annotator_group=group)


def test_accuracy_by_annotator_known_values():
    """Annotator x: right, right, wrong (2/3); y: right, and a tie-labelled pair (1/1 on one pair, two
    pairs); no annotator: a score tie (1/2). Worst first: (none) 0.5, x 0.667, y 1.0; each interval is
    Wilson's on its own counts."""
    pairs = [_pair("x"), _pair("x"), _pair("x"), _pair("y"), _pair("y", tie=True), _pair(None)]
    correct = [1, 1, 0, 1, 0, 0.5]
    ordered = [not p.tie for p in pairs]
    out = accuracy_by(pairs, correct, ordered, "annotator")
    assert [r.name for r in out.rows] == [NONE, "x", "y"]
    assert [r.accuracy for r in out.rows] == pytest.approx([0.5, 2 / 3, 1.0])
    assert [(r.n, r.pairs) for r in out.rows] == [(1, 1), (3, 3), (1, 2)]
    assert (out.rows[1].ci_low, out.rows[1].ci_high) == wilson_interval(2, 3)
    assert {r.scored_for for r in out.rows} == {"population"}


def test_groups_are_a_property_of_the_annotator():
    """--by group: from the pairs' annotator_group or a --groups mapping; an annotator in two groups,
    a mapped group with nobody in the data, and data without any group are errors, not a silent table."""
    pairs = [_pair("x", group="g1"), _pair("y", group="g2"), _pair("z"), _pair(None)]
    out = accuracy_by(pairs, [1, 0, 1, 1], [True] * 4, "group")
    assert {r.name: (r.pairs, r.members) for r in out.rows} == {"g2": (1, 1), "g1": (1, 1), NONE: (2, 1)}
    mapped = accuracy_by(pairs, [1, 0, 1, 1], [True] * 4, "group", groups={"g": ["x", "z"]})
    assert {r.name: r.pairs for r in mapped.rows} == {"g": 2, NONE: 2}
    with pytest.raises(ValueError, match="'x' is in group 'g2' here and in 'g1'"):
        accuracy_by([*pairs, _pair("x", group="g2")], [1] * 5, [True] * 5, "group")
    with pytest.raises(ValueError, match="group 'empty' has no annotator"):
        accuracy_by(pairs, [1] * 4, [True] * 4, "group", groups={"g": ["x"], "empty": ["nobody"]})
    with pytest.raises(ValueError, match="no pair names its annotator's group"):
        accuracy_by([_pair("x")], [1], [True], "group")


def test_eval_by_annotator_on_tulu1(model_dir, tmp_path):
    """The real Tulu 1 file: 16 evaluators, every pair counted once, worst first, each row the mean
    correctness of that evaluator's pairs under the evaluation's own scores; in eval.md/json/html."""
    evaluated = evaluate_data(str(model_dir), "tulu1", by="annotator", precision="fp32", report=tmp_path / "r")
    result, pairs = evaluated.result, load_preferences("tulu1").pairs
    table = result.extras["by_group"]
    assert len(table.rows) == 16 and NONE not in {r.name for r in table.rows}
    assert sum(r.pairs for r in table.rows) == len(pairs) == len(result.ordered)
    accuracies = [r.accuracy for r in table.rows]
    assert accuracies == sorted(accuracies)
    correct = pairwise_correct(result.chosen_scores, result.rejected_scores)
    worst = table.rows[0]
    mine = [c for c, p, o in zip(correct, pairs, result.ordered, strict=True) if p.annotator == worst.name and o]
    assert worst.accuracy == pytest.approx(np.mean(mine)) and worst.n == len(mine)
    markdown = (tmp_path / "r" / "eval.md").read_text(encoding="utf-8")
    assert "### Per annotator (worst first)" in markdown and f"| {worst.name} | {worst.accuracy:.4f} |" in markdown
    saved = json.loads((tmp_path / "r" / "eval.json").read_text(encoding="utf-8"))
    assert saved["extras"]["by_group"]["rows"][0]["name"] == worst.name
    assert "Per annotator" in (tmp_path / "r" / "eval.html").read_text(encoding="utf-8")


def test_eval_by_group_with_groups_file(model_dir, tmp_path):
    """Tulu 1's evaluators in two groups from a --groups file: two rows whose pairs add up to the file's."""
    ids = sorted({p.annotator for p in load_preferences("tulu1").pairs})
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"first": ids[:8], "second": ids[8:]}))
    evaluated = evaluate_data(str(model_dir), "tulu1", by="group", groups=groups, precision="fp32")
    rows = evaluated.result.extras["by_group"].rows
    assert sorted(r.name for r in rows) == ["first", "second"] and sum(r.members for r in rows) == 16
    assert sum(r.pairs for r in rows) == len(evaluated.result.ordered)
    groups.write_text(json.dumps({"first": ids, "none": []}))
    shown = CliRunner().invoke(cli.app, ["eval", str(model_dir), "tulu1", "--by", "group", "--groups", str(groups)])
    assert shown.exit_code != 0 and "a group needs members (empty: none)" in shown.output
    shown = CliRunner().invoke(cli.app, ["eval", str(model_dir), "tulu1", "--by", "user"])
    assert shown.exit_code != 0 and "--by must be annotator or group" in shown.output


def _length_rows(n: int = 60) -> list[dict]:
    """Chosen 3× longer on even rows (the length differs: a minority user flips it), chosen 10 % longer
    on rows divisible by 3 but odd (below the 20 % threshold: kept), chosen shorter otherwise (kept)."""
    rows = []
    for i in range(n):
        short = f"reply {i:03d} " * 2
        if i % 2 == 0:
            chosen, rejected = short * 3, short
        elif i % 3 == 0:
            chosen, rejected = short + "x" * (len(short) // 10), short
        else:
            chosen, rejected = short, short * 3
        rows.append(
            {"prompt": f"q{i}", "chosen": chosen, "rejected": rejected, "chosen_rating": 5, "rejected_rating": 1}
        )
    return rows


def test_user_groups_flip_exactly_the_minority_pairs_where_the_aspect_differs(tmp_path):
    data = write_jsonl(_length_rows(), tmp_path / "pairs.jsonl")
    built = build_user_groups(data, tmp_path / "out.jsonl", minority=0.3, users=10, seed=3)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert built.pairs == 60 and built.minority_users == 3 and set(built.by_user.values()) == {6}
    minority = {r["annotator"] for r in rows if r["annotator_group"] == MINORITY}
    assert len(minority) == 3 and built.pairs_by_group == {"majority": 42, "minority": 18}
    for i, row in enumerate(rows):  # the input order is kept
        flip = row["annotator"] in minority and i % 2 == 0
        assert row["original_label"] == ("flipped" if flip else "kept"), i
        assert (len(row["chosen"]) < len(row["rejected"])) == (flip or (i % 2 == 1 and i % 3 != 0))
        assert (row["chosen_rating"], row["rejected_rating"]) == ((1, 5) if flip else (5, 1))
    assert built.minority_flipped == sum(r["original_label"] == "flipped" for r in rows) > 0
    again = build_user_groups(data, tmp_path / "again.jsonl", minority=0.3, users=10, seed=3)
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
    assert (again.by_user, again.minority_flipped) == (built.by_user, built.minority_flipped)
    loaded = load_preferences(tmp_path / "out.jsonl").pairs
    assert {p.annotator_group for p in loaded} == {"majority", "minority"}


def test_user_groups_bad_options_all_at_once(tmp_path):
    data = write_jsonl(_length_rows(4), tmp_path / "pairs.jsonl")
    with pytest.raises(ValueError) as error:
        build_user_groups(data, tmp_path / "o.jsonl", aspect="tone", minority=0.01, users=10, threshold=-1)
    message = str(error.value)
    assert "--aspect must be one of length, refusal" in message and "0 minority users" in message
    assert "--threshold must be ≥ 0" in message
    with pytest.raises(ValueError, match="is the input file"):
        build_user_groups(data, data)
    graded = write_jsonl(
        [{"prompt": "q", "response_a": "x", "response_b": "y", "preference": "a-is-better"}], tmp_path / "g.jsonl"
    )
    with pytest.raises(ValueError, match='needs rows with "chosen" and "rejected"'):
        build_user_groups(graded, tmp_path / "o.jsonl")


def test_user_groups_on_real_hh_from_the_command_line(tmp_path):
    """hh-harmless, 70/30, 20 users: every pair once, each minority flip is a pair whose human-chosen
    reply was more than 20 % longer, and no majority pair changes."""
    output = tmp_path / "hh.jsonl"
    shown = CliRunner().invoke(cli.app, ["data", "groups", "hh-harmless", "--output", str(output)])
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    original = load_preferences("hh-harmless").pairs
    assert len(rows) == len(original) == 1850 and "1850 pairs for 20 users" in shown.output
    flipped = load_preferences(output).pairs
    for row, before, after in zip(rows, original, flipped, strict=True):
        if row["original_label"] == "flipped":
            assert row["annotator_group"] == MINORITY and len(before.chosen) > 1.2 * len(before.rejected)
            assert (after.chosen, after.rejected) == (before.rejected, before.chosen)
        else:
            assert (after.chosen, after.rejected) == (before.chosen, before.rejected)


def test_refusal_check():
    assert refuses("I'm sorry, but I can't help with that.") and refuses("As an AI, I won't do this.")
    assert not refuses("Sure! Here is how to bake bread: mix flour and water.")


USERS = ["a0", "a1", "a2", "b0", "b1", "b2"]


def _two_groups(n: int, seed: int, users: list[str]) -> list[dict]:
    """Group ``a`` keeps the true-reward order of ``synthetic_pairs``, group ``b`` reverses it."""
    rows = []
    for i, row in enumerate(synthetic_pairs(n, seed=seed)):
        user = users[i % len(users)]
        flip = user.startswith("b")
        chosen, rejected = (row["rejected"], row["chosen"]) if flip else (row["chosen"], row["rejected"])
        rows.append({**row, "chosen": chosen, "rejected": rejected, "annotator": user, "annotator_group": user[0]})
    return rows


def test_a_pluralistic_model_is_scored_for_each_annotator(tiny_encoder_dir, tmp_path):
    """A tiny PAL model trained on two groups with opposite labels: on held-out pairs each known user's
    row is the one that scores its pairs (the table's accuracy is that of ``score(..., user=ID)``), an
    unseen annotator and pairs without one are scored for the population, and the report says which.
    The population's reward cannot order both groups' pairs; each user's row orders its own better."""
    train = write_jsonl(_two_groups(320, 7, USERS), tmp_path / "train.jsonl")
    held_out = _two_groups(120, 8, USERS) + _two_groups(12, 9, ["stranger"])
    held_out += [{k: v for k, v in r.items() if k != "annotator"} for r in _two_groups(6, 10, ["a"])]
    data = write_jsonl(held_out, tmp_path / "test.jsonl")
    options = {"objective": "pal", "precision": "fp32", "progress": False, "num_threads": 1, "batch_size": 16}
    options |= {"max_steps": 200, "eval_every": 100}
    options |= {"model.max_length": 32, "optim.lr": 3e-3, "optim.head_lr": 0.1}
    trained = rewardlab.train(data=str(train), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", **options)
    evaluated = evaluate_data(str(trained.model_dir), str(data), by="annotator", precision="fp32")
    rows = {r.name: r for r in evaluated.result.extras["by_group"].rows}
    assert {rows[u].scored_for for u in USERS} == {"that user"}
    assert rows["stranger"].scored_for == rows[NONE].scored_for == "population" and rows[NONE].pairs == 6
    model, pairs = RewardModel.from_pretrained(trained.model_dir), load_preferences(data).pairs
    mine = [p for p in pairs if p.annotator == "b0"]
    chosen = model.score([p.prompt for p in mine], [p.chosen for p in mine], precision="fp32", user="b0")
    rejected = model.score([p.prompt for p in mine], [p.rejected for p in mine], precision="fp32", user="b0")
    assert rows["b0"].accuracy == pytest.approx(float(np.mean(pairwise_correct(chosen, rejected))))
    by_user = np.mean([rows[u].accuracy for u in USERS])
    assert min(rows[u].accuracy for u in USERS) >= 0.8 and by_user > evaluated.result.overall.accuracy + 0.2
    assert "| that user |" in evaluated.markdown()


def test_a_minority_for_longer_replies_flips_the_other_pairs(tmp_path) -> None:
    """``prefer="longer"`` flips exactly the minority pairs whose human-chosen reply is the clearly shorter one."""
    data = write_jsonl(_length_rows(), tmp_path / "pairs.jsonl")
    built = build_user_groups(data, tmp_path / "out.jsonl", minority=0.3, users=10, seed=3, prefer="longer")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    for row in rows:
        flipped = row["original_label"] == "flipped"
        human_chosen = row["rejected"] if flipped else row["chosen"]
        human_rejected = row["chosen"] if flipped else row["rejected"]
        assert flipped == (row["annotator_group"] == MINORITY and len(human_rejected) > 1.2 * len(human_chosen))
    assert built.minority_flipped == sum(r["original_label"] == "flipped" for r in rows)
    with pytest.raises(ValueError, match="--prefer"):
        build_user_groups(data, tmp_path / "bad.jsonl", prefer="louder")


def test_opposed_groups_follow_opposite_length_rules(tmp_path) -> None:
    """``opposed``: where the lengths differ by more than 20 % the minority chooses the longer reply and
    the majority the shorter; elsewhere both keep the human label. In ``_length_rows`` the human chose
    the longer reply on even rows (the majority flips those) and the shorter on the other rows where
    the lengths differ (the minority flips those)."""
    data = write_jsonl(_length_rows(), tmp_path / "pairs.jsonl")
    built = build_user_groups(
        data, tmp_path / "out.jsonl", minority=0.3, users=10, seed=3, prefer="longer", opposed=True
    )
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        differ = i % 2 == 0 or i % 3 != 0
        if differ:
            longer_chosen = len(row["chosen"]) > len(row["rejected"])
            assert longer_chosen == (row["annotator_group"] == MINORITY), i
        else:
            assert row["original_label"] == "kept", i
    assert built.majority_flipped == sum(
        r["original_label"] == "flipped" for r in rows if r["annotator_group"] == MAJORITY
    )
    assert built.majority_flipped > 0 and built.minority_flipped > 0 and "majority:" in built.summary()
    with pytest.raises(ValueError, match="--opposed is for --aspect length"):
        build_user_groups(data, tmp_path / "bad.jsonl", aspect="refusal", opposed=True)
