"""Every registered objective trains end to end (data file → trainer → saved model → eval)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic import BAD, GOOD, WEIGHTS, true_reward
from transformers import AutoModelForSequenceClassification

import rewardlab
from rewardlab.models.ensemble import RewardEnsemble
from rewardlab.models.reward_model import RewardModel
from rewardlab.objectives import get_objective, objective_names

QUICK = {"precision": "fp32", "progress": False, "num_threads": 1, "max_steps": 6, "batch_size": 8, "eval_every": 3}


def reply(rng: random.Random) -> str:
    return " ".join(rng.choice(list(WEIGHTS)) for _ in range(6))


def attributes(text: str) -> list[float]:
    """Two known attributes: how many good words, how few bad words."""
    words = text.split()
    return [float(sum(w in GOOD for w in words)), -float(sum(w in BAD for w in words))]


def write_rows(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    """Pairs with ratings and graded strength, pairs with per-attribute ratings, and 4-way rankings,
    all labelled by the known reward of ``synthetic.py``."""
    rng = random.Random(3)
    folder = tmp_path_factory.mktemp("objective-data")
    pairs, attribute_pairs, rankings = [], [], []
    while len(pairs) < 160:
        a, b = reply(rng), reply(rng)
        gap = true_reward(a) - true_reward(b)
        if gap == 0:
            continue
        chosen, rejected = (a, b) if gap > 0 else (b, a)
        base = {"prompt": f"question {len(pairs) % 5}", "chosen": chosen, "rejected": rejected}
        base["annotator"] = f"u{len(pairs) % 4}"  # pluralistic objectives learn one row per annotator
        pairs.append(
            base
            | {
                "chosen_rating": true_reward(chosen),
                "rejected_rating": true_reward(rejected),
                "strength": 1 / (1 + math.exp(-abs(gap))),
            }
        )
        attribute_pairs.append(base | {"chosen_rating": attributes(chosen), "rejected_rating": attributes(rejected)})
    while len(rankings) < 80:
        replies = [reply(rng) for _ in range(4)]
        rewards = [true_reward(r) for r in replies]
        if len(set(rewards)) < 4:
            continue
        order = sorted(range(4), key=lambda i: -rewards[i])
        rankings.append({"prompt": f"question {len(rankings) % 5}", "responses": replies, "ranking": order})
    return {
        "pairs": write_rows(pairs, folder / "pairs.jsonl"),
        "attributes": write_rows(attribute_pairs, folder / "attributes.jsonl"),
        "rankings": write_rows(rankings, folder / "rankings.jsonl"),
    }


def data_for(name: str) -> str:
    """Which file of ``data_files`` trains the objective, read from what it declares: rankings for a
    ranking objective, per-attribute ratings for an attribute head, else the pairs (which carry
    scalar ratings and strengths for the objectives that read them)."""
    objective = get_objective(name)
    if not objective.pairwise:
        return "rankings"
    return "attributes" if objective.head == "attributes" else "pairs"


@pytest.mark.parametrize("name", objective_names())
def test_objective_trains_saves_and_evaluates(name, data_files, tiny_encoder_dir, tmp_path) -> None:
    """Every registered objective, with its default options, on the data its inputs call for."""
    result = rewardlab.train(
        data=str(data_files[data_for(name)]),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        objective=name,
        **QUICK,
    )
    assert result.steps == QUICK["max_steps"] and result.test is not None and result.test.overall.n > 0
    assert math.isfinite(result.test.overall.accuracy)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x["loss"]) for x in lines)

    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    model = RewardModel.from_pretrained(result.model_dir)
    assert plain.config.num_labels == get_objective(name).saved_outputs({})
    assert model.info.objective == name and model.info.head == get_objective(name).head
    if model.info.scores_pairs:
        with pytest.raises(ValueError, match="compares replies"):
            model.score(["q"], ["helpful"])
    else:
        assert len(model.score(["q", "q"], ["helpful kind", "rude wrong"], precision="fp32")) == 2


def test_multi_attribute_direction_changes_the_ranking(data_files, tiny_encoder_dir, tmp_path) -> None:
    """Trained on two known attributes, the model ranks by whichever one the direction points at."""
    result = rewardlab.train(
        data=str(data_files["attributes"]),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        objective="multi_attribute_regression",
        **{**QUICK, "max_steps": 60, "optim.lr": 1e-3, "objective.args.attributes": 2},
    )
    model = RewardModel.from_pretrained(result.model_dir)
    many_good_some_bad = "helpful clear correct rude wrong the"
    no_good_no_bad = "the answer is here today maybe"
    texts = [many_good_some_bad, no_good_no_bad]
    by_goodness = model.score(["q", "q"], texts, precision="fp32", direction=[1, 0])
    by_harmlessness = model.score(["q", "q"], texts, precision="fp32", direction=[0, 1])
    assert by_goodness[0] > by_goodness[1] and by_harmlessness[0] < by_harmlessness[1]


def test_ensemble_scores_carry_their_uncertainty(data_files, tiny_encoder_dir, tmp_path) -> None:
    result = rewardlab.train(
        data=str(data_files["pairs"]),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        objective="ensemble_bradley_terry",
        **{**QUICK, "objective.args.members": 3, "objective.args.bootstrap": "poisson"},
    )
    """Each of the head's members is standardised with its own statistics on the training replies,
    saved with the model, before the members are aggregated (as separately trained members are)."""
    model = RewardModel.from_pretrained(result.model_dir)
    means, stds = torch.tensor(model.info.member_means), torch.tensor(model.info.member_stds)
    assert means.shape == stds.shape == (3,) and bool((stds > 0).all())
    texts = ["helpful kind", "rude wrong", "the the the"]
    mean, variance = model.score_with_uncertainty(["q"] * 3, texts, precision="fp32")
    z = (model.outputs_ids(model.encode(["q"] * 3, texts).ids, precision="fp32") - means) / stds
    assert torch.allclose(torch.tensor(mean), z.mean(-1), atol=1e-5) and all(v >= 0 for v in variance)
    model.info.aggregation = "wco"
    assert model.score(["q"] * 3, texts, precision="fp32") == pytest.approx(z.min(-1).values.tolist(), abs=1e-5)


def test_gpm_through_the_cli_is_evaluated_on_pairwise_probabilities(data_files, tiny_encoder_dir, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--data", str(data_files["pairs"]), "--backbone", str(tiny_encoder_dir), "--output", str(tmp_path / "run")]
    overrides = ["precision=fp32", "max_steps=4", "objective.args.dim=3", "progress=false"]
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab", "train", "--objective", "gpm", *args, *overrides],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "held-out accuracy" in done.stdout
    model = RewardModel.from_pretrained(tmp_path / "run" / "model")
    ids = model.encode(["q", "q"], ["helpful kind", "rude wrong"]).ids
    forward = model.preference_logits([ids[0]], [ids[1]], precision="fp32")[0]
    backward = model.preference_logits([ids[1]], [ids[0]], precision="fp32")[0]
    assert forward == pytest.approx(-backward, abs=1e-6)  # skew-symmetric: P(a ≻ b) = 1 − P(b ≻ a)
    report = json.loads((tmp_path / "run" / "report" / "eval.json").read_text())
    assert report["overall"]["n"] > 0
    predictions = (tmp_path / "run" / "report" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == report["overall"]["n"] and all(json.loads(row)["chosen"] for row in predictions)


def test_data_without_ratings_is_refused_for_regression(tiny_encoder_dir, tmp_path) -> None:
    rows = [{"prompt": "q", "chosen": f"helpful {i}", "rejected": f"rude {i}"} for i in range(30)]
    with pytest.raises(ValueError, match="learns from ratings, but none of the"):
        rewardlab.train(
            data=str(write_rows(rows, tmp_path / "p.jsonl")),
            backbone=str(tiny_encoder_dir),
            output_dir=tmp_path / "run",
            objective="regression",
            **QUICK,
        )


def test_independent_members_score_as_an_ensemble(data_files, tiny_encoder_dir, tmp_path) -> None:
    """Two members trained on different bootstrap samples: the ensemble's mean, worst case and
    variance are those of the members' scores standardised by their saved statistics, and the CLI
    writes the uncertainty."""
    members = []
    for seed in (1, 2):
        result = rewardlab.train(
            data=str(data_files["pairs"]),
            backbone=str(tiny_encoder_dir),
            output_dir=tmp_path / f"member{seed}",
            **{**QUICK, "seed": seed, "data.bootstrap_seed": seed},
        )
        members.append(result.model_dir)
    texts = ["helpful kind", "rude wrong", "the answer"]
    models = [RewardModel.from_pretrained(m) for m in members]
    raw = torch.tensor([m.score(["q"] * 3, texts, precision="fp32") for m in models])
    assert not torch.equal(raw[0], raw[1])
    mean, std = (torch.tensor([[getattr(m.info, k)] for m in models]) for k in ("reward_mean", "reward_std"))
    scores = (raw - mean) / std
    ensemble = RewardEnsemble.from_pretrained(members, aggregation="wco")
    worst, variance = ensemble.score_with_uncertainty(["q"] * 3, texts, precision="fp32")
    assert worst == pytest.approx(scores.min(0).values.tolist())
    assert variance == pytest.approx(scores.var(0, unbiased=False).tolist())

    rows = write_rows([{"prompt": "q", "response": t} for t in texts], tmp_path / "in.jsonl")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["score", str(members[0]), str(rows), "--output", str(tmp_path / "out.jsonl"), "--precision", "fp32"]
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab", *command, "--member", str(members[1])],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    written = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [w["reward"] for w in written] == pytest.approx(scores.mean(0).tolist(), abs=1e-6)
    assert [w["uncertainty"] for w in written] == pytest.approx(variance, abs=1e-6)


def test_tree_records_train(tiny_encoder_dir, tmp_path) -> None:
    """Tree-structured preferences (replies sharing a prefix, compared between branches) train as pairs."""
    rng = random.Random(5)
    rows = []
    for i in range(40):
        stem = reply(rng)
        branches = [reply(rng) for _ in range(3)]
        order = sorted(range(3), key=lambda j: -true_reward(branches[j]))
        nodes = [{"id": "s", "text": stem}] + [
            {"id": f"b{j}", "parent": "s", "text": " " + b} for j, b in enumerate(branches)
        ]
        comparisons = [{"chosen": f"b{order[0]}", "rejected": f"b{order[2]}"}]
        rows.append({"prompt": f"question {i}", "nodes": nodes, "comparisons": comparisons, "id": f"t{i}"})
    result = rewardlab.train(
        data=str(write_rows(rows, tmp_path / "trees.jsonl")),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        **QUICK,
    )
    assert result.steps == QUICK["max_steps"] and result.test is not None


@pytest.mark.slow
def test_real_minilm_learns_from_real_rankings_and_preference_embeddings(tmp_path) -> None:
    """The real MiniLM backbone with objectives beyond Bradley-Terry on real data: Plackett-Luce on
    FineGrained-RLHF's judgements (as rankings of two) and GPM on the embedded HH pairs, a few steps each."""
    data = Path(__file__).resolve().parents[1] / "data" / "finegrained-rlhf-qa-feedback-dev.json"
    columns = "prompt=question,responses=prediction 1|prediction 2|prediction 3|prediction 4,judgements=preference"
    common = {"max_steps": 2, "batch_size": 4, "progress": False, "model.max_length": 128}
    ranked = rewardlab.train(
        data=str(data),
        output_dir=tmp_path / "pl",
        objective="plackett_luce",
        **common,
        **{"data.columns": columns, "data.test_fraction": 0.02, "data.validation_fraction": 0.01},
    )
    assert ranked.test is not None and ranked.test.overall.n > 0
    gpm = rewardlab.train(
        output_dir=tmp_path / "gpm",
        objective="gpm",
        **common,
        **{"data.test_fraction": 0.02, "data.validation_fraction": 0.01},
    )
    model = RewardModel.from_pretrained(gpm.model_dir)
    assert model.info.scores_pairs and model.model.config.num_labels == 4 and gpm.test.overall.n == 37


def test_tied_pairs_are_left_out_for_an_objective_that_cannot_learn_ties(tiny_encoder_dir, tmp_path, capsys) -> None:
    """``adaptive_margin`` takes no ``tie``: its tied pairs are dropped with a count, not read as preferences."""
    rows = [
        {"prompt": f"q{i}", "chosen": f"helpful {i}", "rejected": f"rude {i}", "strength": 0.9, "tie": i % 4 == 0}
        for i in range(40)
    ]
    rewardlab.train(
        data=str(write_rows(rows, tmp_path / "p.jsonl")),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        objective="adaptive_margin",
        **{**QUICK, "max_steps": 2},
    )
    assert "tie-labelled pairs left out: objective 'adaptive_margin' cannot learn from ties" in capsys.readouterr().out
