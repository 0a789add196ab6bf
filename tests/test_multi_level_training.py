"""MAPL's intra-sample pairs trained and evaluated end to end (Sun et al. 2025; abstract only).

An intra-sample pair is one reply y judged under two prompts: x_w, whose instructions y satisfies,
over x_l, where one of them is changed so that y violates it. It travels as a ``PreferencePair``
with chosen = rejected = y and ``rejected_prompt`` = x_l, so Bradley-Terry reads
r(x_w, y) − r(x_l, y). Known answers: each side encodes and scores exactly as its (prompt, reply)
alone, packed or not; the property: with a true reward that counts satisfied instructions, a tiny
model trained with the intra-sample pairs ranks held-out (x_w, y) over (x_l, y) well above chance,
and the same model trained on the plain pairs alone does not.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.data.loading import load_preferences
from rewardlab.data.multi_level import intra_sample_pairs, satisfied_count
from rewardlab.data.records import DataError, PreferencePair
from rewardlab.data.schema import ColumnMap
from rewardlab.data.split import content_key
from rewardlab.evaluate.pairwise import score_pairs
from rewardlab.evaluate.run import evaluate_data
from rewardlab.models.pair_encoding import encode_pairs as encode_policy_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy.run_config import DPODataConfig
from rewardlab.runs.data import SplitDataConfig, load_split
from rewardlab.training.batching import encode_pairs

WORDS = ["river", "stone", "garden", "window", "yellow", "quiet", "market", "candle", "forest", "silver", "music"]


def original_rows(n: int, seed: int = 0) -> list[dict]:
    """Plain pairs: a long reply over a short one, prompts without instructions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        chosen = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        rejected = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        rows.append({"prompt": f"Describe thing {i}.", "chosen": chosen, "rejected": rejected})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pair_row(pair: PreferencePair) -> dict:
    row = {"prompt": pair.prompt, "rejected_prompt": pair.rejected_prompt, "chosen": pair.chosen}
    row |= {"rejected": pair.rejected, "weight": pair.weight, "subset": pair.subset, "group": pair.group}
    return row


def intra_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    originals = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in original_rows(n, seed)]
    return [record.as_pair() for record in intra_sample_pairs(originals, seed=seed, weight=0.5)]


def test_an_intra_sample_pair_is_a_pair_whose_rejected_side_has_its_own_prompt():
    pairs = intra_pairs(5)
    assert pairs and all(p.chosen == p.rejected and p.rejected_prompt not in (None, p.prompt) for p in pairs)
    for pair in pairs:  # the reply satisfies every instruction of x_w and not every one of x_l
        good, total = satisfied_count(pair.prompt, pair.chosen)
        bad, _ = satisfied_count(pair.prompt_of_rejected, pair.rejected)
        assert good == total and bad < total
    plain = PreferencePair("q", "a", "b")
    assert plain.prompt_of_rejected == "q" and plain.rejected_prompt is None
    # two pairs that differ only in the rejected side's prompt are different content (split apart if ungrouped)
    other = PreferencePair("q", "a", "b", rejected_prompt="r")
    assert content_key(other) != content_key(plain)


def test_a_rejected_prompt_row_round_trips_through_jsonl(tmp_path):
    pairs = intra_pairs(6)
    path = write_jsonl(tmp_path / "intra.jsonl", [pair_row(p) for p in pairs])
    assert load_preferences(str(path)).pairs == pairs
    # under another field name, through the column map
    renamed = [{("x_l" if k == "rejected_prompt" else k): v for k, v in pair_row(p).items()} for p in pairs]
    path = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    assert load_preferences(str(path), columns=ColumnMap.parse("rejected_prompt=x_l")).pairs == pairs
    # the same prompt on both sides is an ordinary pair; so is an empty or null field
    same = {"prompt": "q", "rejected_prompt": "q", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "same.jsonl", [same, same | {"rejected_prompt": None}])
    assert [p.rejected_prompt for p in load_preferences(str(path)).pairs] == [None, None]
    # one reply twice with no second prompt carries no preference: skipped and counted, as before
    path = write_jsonl(tmp_path / "none.jsonl", [same | {"rejected_prompt": None, "rejected": "a"}, same])
    assert len(load_preferences(str(path)).pairs) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "q", "rejected_prompt": 5, "chosen": "a", "rejected": "a"}, "is a number (5)"),
        ({"chosen": "q a", "rejected": "q b", "rejected_prompt": "r"}, 'needs the chosen side\'s prompt in "prompt"'),
    ],
)
def test_a_bad_rejected_prompt_row_is_a_located_error(row, message, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [row, {"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match=re.escape(f'bad.jsonl:1: field "rejected_prompt": {message}')):
        load_preferences(str(path))


@pytest.fixture(scope="module", params=["encoder", "decoder"])
def tiny_reward_model(request) -> RewardModel:
    directory = request.getfixturevalue(f"tiny_{request.param}_dir")
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(directory), max_length=96)


def alone(model: RewardModel, prompt, reply: str) -> float:
    """The reward of one (prompt, reply) scored in its own row, no padding, nothing else in the pass."""
    ids = model.encode([prompt], [reply]).ids[0]
    with torch.no_grad():
        return float(model.rewards(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0])


def test_each_side_is_encoded_and_scored_after_its_own_prompt(tiny_reward_model):
    """Training (packed rows on the decoder, one row per side on the encoder) and evaluation give each
    side the reward of its (prompt, reply) scored alone; a decoder still reads the prompts' shared start once."""
    model = tiny_reward_model
    pairs = [*intra_pairs(3), PreferencePair("Describe thing 9.", "river stone", "quiet")]
    encoded = encode_pairs(model, pairs)
    assert encoded.rejected == [model.encode([p.prompt_of_rejected], [p.rejected]).ids[0] for p in pairs]
    assert encoded.chosen == [model.encode([p.prompt], [p.chosen]).ids[0] for p in pairs]
    expected_chosen = [alone(model, p.prompt, p.chosen) for p in pairs]
    expected_rejected = [alone(model, p.prompt_of_rejected, p.rejected) for p in pairs]
    assert len(set(expected_chosen + expected_rejected)) == 2 * len(pairs), "sides must differ to mean anything"
    with torch.no_grad():
        batch, tokens = encoded.forward(model, range(len(pairs)))
    assert batch["chosen"].tolist() == pytest.approx(expected_chosen, abs=1e-5)
    assert batch["rejected"].tolist() == pytest.approx(expected_rejected, abs=1e-5)
    separate = sum(len(c) + len(r) for c, r in zip(encoded.chosen, encoded.rejected, strict=True))
    assert encoded.packed == model.shares_prefix and (tokens < separate) == model.shares_prefix
    chosen, rejected, _ = score_pairs(model, pairs, precision="fp32")  # what eval and validation read
    assert chosen == pytest.approx(expected_chosen, abs=1e-5)
    assert rejected == pytest.approx(expected_rejected, abs=1e-5)


def held_out_intra_file(data: Path, out: Path) -> Path:
    """The test split's replies as intra-sample pairs (a seed not used in training), as a JSONL file."""
    test = load_split(SplitDataConfig(path=str(data)), say=lambda _: None).splits.test
    return write_jsonl(out, [pair_row(r.as_pair()) for r in intra_sample_pairs(test, seed=7)])


def test_training_on_intra_sample_pairs_ranks_held_out_prompts(tiny_encoder_dir, tmp_path):
    """True reward: satisfied minus violated instructions (plus reply length between originals).

    Trained on the plain pairs only, every prompt has no instruction, so nothing ranks x_w over x_l
    for one reply (held-out accuracy 0.51 when written); with ``data.multi_level=true`` (intra-sample
    pairs only here, for speed) the same tiny encoder ranks 0.84 of 160 held-out records right
    (fp32; 0.79 to 0.92 over three other seeds). Asserted: ≥ 0.75, the 95 % interval above ½, and
    ≥ 0.2 above the plain run.
    """
    data = write_jsonl(tmp_path / "pairs.jsonl", original_rows(400))
    held = held_out_intra_file(data, tmp_path / "held_intra.jsonl")
    quick = {"precision": "fp32", "progress": False, "num_threads": 1, "batch_size": 32, "eval_every": 1000}
    quick |= {"optim.lr": 5e-3, "model.max_length": 96, "data.multi_level_inter": False}
    accuracy = {}
    for name, steps, multi_level in (("plain", 80, False), ("intra", 300, True)):
        out = tmp_path / name
        result = rewardlab.train(
            data=str(data),
            backbone=str(tiny_encoder_dir),
            output_dir=out,
            max_steps=steps,
            **{"data.multi_level": multi_level},
            **quick,
        )
        assert result.test.overall.accuracy >= 0.9  # the originals' preference (longer reply) is learned
        accuracy[name] = evaluate_data(str(out / "model"), str(held), precision="fp32").result.overall
    assert accuracy["intra"].n == 160
    assert accuracy["intra"].accuracy >= 0.75 and accuracy["intra"].ci_low > 0.5, accuracy
    assert accuracy["intra"].accuracy >= accuracy["plain"].accuracy + 0.2, accuracy


def test_train_command_with_multi_level(tiny_encoder_dir, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", original_rows(40))
    args = ["train", "--data", str(data), "--backbone", str(tiny_encoder_dir), "--output", str(tmp_path / "run")]
    args += ["max_steps=2", "precision=fp32", "progress=false", "num_threads=1", "model.max_length=64"]
    args += ["data.multi_level=true", "data.multi_level_intra_weight=0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    n = len(load_split(SplitDataConfig(path=str(data)), say=lambda _: None).splits.train)
    said = f"multi-level (MAPL): {2 * n} inter-sample and {2 * n} intra-sample pairs added to {n} training pairs"
    assert said in result.output and "held-out accuracy" in result.output
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "multi_level_intra: true" in saved and "multi_level_intra_weight: 0.5" in saved


def test_multi_level_settings_are_checked_together():
    assert SplitDataConfig(multi_level_intra_weight=0, multi_level_max_instructions=0).problems() == [
        "data.multi_level_intra_weight must be > 0 (got 0)",
        "data.multi_level_max_instructions must be at least 1 (got 0)",
    ]
    both_off = SplitDataConfig(multi_level=True, multi_level_inter=False, multi_level_intra=False)
    said = "data.multi_level=true adds nothing with data.multi_level_inter and _intra both false"
    assert both_off.problems() == [said]


def test_policy_runs_refuse_two_prompt_pairs_in_one_line(tiny_decoder_dir, tmp_path):
    """DPO's log-ratios compare two replies to one prompt: a two-prompt pair is refused, never misread,
    and a policy run's ``data.multi_level`` adds no intra-sample pairs unless asked."""
    assert DPODataConfig().multi_level_intra is False and SplitDataConfig().multi_level_intra is True
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    with pytest.raises(ValueError, match="1 of 2 pairs have a rejected_prompt"):
        encode_policy_pairs(tokenizer, [PreferencePair("q", "a", "b"), *intra_pairs(1)[:1]], "plain", 64, 64)
    rows = [pair_row(p) for p in intra_pairs(10)] + original_rows(10)
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    args = ["dpo", "--data", str(data), "--policy", str(tiny_decoder_dir), "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "train.steps=1", "num_threads=1"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "rejected_prompt" in line]
    assert len(errors) == 1 and "set data.multi_level_intra=false or drop the rejected_prompt field" in errors[0]


def test_a_ranking_objective_leaves_two_prompt_pairs_out(tiny_encoder_dir, tmp_path):
    """A ranking shares one prompt, so Plackett-Luce would read (x_w, y) ≻ (x_l, y) as y ≻ y: such
    pairs are left out, with a count, and the plain ones train."""
    rows = [pair_row(p) for p in intra_pairs(10)] + original_rows(10, seed=1)
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    args = ["train", "--data", str(data), "--backbone", str(tiny_encoder_dir), "--output", str(tmp_path / "run")]
    args += ["--objective", "plackett_luce", "max_steps=1", "precision=fp32", "progress=false", "num_threads=1"]
    result = CliRunner().invoke(app, [*args, "model.max_length=64", "data.validation_fraction=0"])
    assert result.exit_code == 0, result.output
    train = load_split(SplitDataConfig(path=str(data), validation_fraction=0), say=lambda _: None).splits.train
    two = sum(p.rejected_prompt is not None for p in train)
    assert two and f"{two} pairs with a rejected_prompt left out: a ranking shares one prompt" in result.output


def test_convex_da_keeps_intra_sample_pairs_as_they_are(tiny_encoder_dir, tmp_path):
    """ConvexDA rewrites a pair's prompt and replies at random: it would give x_w and y a synonym but
    not x_l, and y two different rewrites. Pairs with a rejected_prompt are passed through untouched."""
    data = write_jsonl(tmp_path / "pairs.jsonl", original_rows(20))
    levels = {"path": str(data), "multi_level": True, "multi_level_inter": False}
    notes: list[str] = []
    intra = load_split(SplitDataConfig(**levels), say=notes.append).splits.train
    both = SplitDataConfig(**levels, convex_da=True, convex_da_encoder=str(tiny_encoder_dir), convex_da_candidates=2)
    train = load_split(both, say=notes.append).splits.train
    two = [p for p in intra if p.rejected_prompt is not None]
    assert two and train[-len(two) :] == two
    assert all(p.rejected_prompt is None for p in train[: -len(two)])
    assert notes[-1].endswith(f"; {len(two)} pairs with a rejected_prompt not augmented")
