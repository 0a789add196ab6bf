"""POLAR policy discriminators (``data/polar.py``, the ``polar`` scorer): the pairs against a hand-built
case, and the property the paper rests on: a model trained on policy pairs scores a reply of the
reference's own policy above a reply of another, for references it never saw."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.data.polar import REFERENCE_HEADER, policy_pairs, with_reference
from rewardlab.evaluate.run import evaluate_data

WORDS = {"a": ("sunny", "bright", "warm", "golden", "clear"), "b": ("rainy", "grey", "cold", "misty", "dark")}


def test_with_reference():
    assert with_reference("Q?", "R.") == f"Q?\n\n{REFERENCE_HEADER}\nR."
    conversation = ({"role": "system", "content": "S"}, {"role": "user", "content": "Q?"})
    assert with_reference(conversation, "R.")[-1] == {"role": "user", "content": f"Q?\n\n{REFERENCE_HEADER}\nR."}


def test_policy_pairs_hand_built():
    """Prompt p1 has two replies of A and two of B: one pair each way; p2 has one reply of A: none."""
    replies = {"A": [("p1", "a1"), ("p1", "a2"), ("p2", "a3")], "B": [("p1", "b1"), ("p1", "b2")]}
    pairs = policy_pairs(replies, seed=0)
    assert sorted(p.subset for p in pairs) == ["A vs B", "B vs A"]
    for pair in pairs:
        own = pair.subset[0].lower()
        reference = pair.prompt.split(f"{REFERENCE_HEADER}\n")[1]
        assert reference[0] == own and pair.chosen[0] == own and pair.rejected[0] != own
        assert reference != pair.chosen
    with pytest.raises(ValueError, match="at least two policies"):
        policy_pairs({"A": replies["A"]})
    with pytest.raises(ValueError, match="no pairs"):
        policy_pairs({"A": [("p", "x")], "B": [("p", "y")]})


def policy_file(path, policy: str, prompts: range, per_prompt: int, seed: int):
    rng = random.Random(seed)
    rows = [
        {"prompt": f"Describe day {i}.", "reply": " ".join(rng.choice(WORDS[policy]) for _ in range(4))}
        for i in prompts
        for _ in range(per_prompt)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_discriminator_learns_which_policy_wrote_a_reply(tiny_encoder_dir, tmp_path):
    files = [policy_file(tmp_path / f"{p}.jsonl", p, range(60), 3, seed) for seed, p in enumerate("ab")]
    pairs = tmp_path / "pairs.jsonl"
    made = CliRunner().invoke(app, ["data", "polar-pairs", *map(str, files), "--output", str(pairs)])
    assert made.exit_code == 0, made.output
    options = {"precision": "fp32", "progress": False, "num_threads": 1, "batch_size": 16, "max_steps": 150}
    options |= {"eval_every": 150, "model.max_length": 48, "optim.lr": 3e-3}
    trained = rewardlab.train(data=str(pairs), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", **options)
    rng = random.Random(9)
    rows = []
    for i in range(100, 140):  # prompts and references never seen in training
        own, other = ("a", "b") if i % 2 else ("b", "a")
        replies = [" ".join(rng.choice(WORDS[p]) for _ in range(4)) for p in (own, own, other)]
        rows.append(
            {"prompt": f"Describe day {i}.", "reference": replies[0], "chosen": replies[1], "rejected": replies[2]}
        )
    held_out = tmp_path / "held-out.jsonl"
    held_out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_data(str(trained.model_dir), str(held_out), scorer="polar", precision="fp32")
    assert result.result.overall.accuracy >= 0.9 and result.result.overall.n == 40
