"""Continual preference tuning on tiny models: a known-answer case (LM texts carry a marker the starting
model ignores; tuning makes the reward find it) and the regulariser's pull towards the start."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rewardlab.detect.records import DetectionRecord, read_detection, write_detection
from rewardlab.detect.scoring import detection_aurocs, score_records
from rewardlab.detect.texts import split_prompts
from rewardlab.detect.tuning import TuneConfig, tune_detector
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)  # two threads fight the machine's other work for two cores: 6x slower here

WORDS = [
    "river",
    "stone",
    "garden",
    "window",
    "music",
    "paper",
    "city",
    "story",
    "light",
    "forest",
    "bread",
    "winter",
    "market",
    "road",
]
MARKER = "certainly delighted assist"


def synthetic_records(prompts: int = 32, seed: int = 0) -> list[DetectionRecord]:
    """Per prompt a human text of random words; the LM text is other random words ending in the
    marker, and the mixed text half human words, half LM words with the marker."""
    rng = random.Random(seed)
    records = []
    for i in range(prompts):
        prompt = f"question {i} about {rng.choice(WORDS)}"
        human = " ".join(rng.choices(WORDS, k=8))
        lm = " ".join(rng.choices(WORDS, k=6)) + " " + MARKER
        mixed = " ".join(human.split()[:4] + rng.choices(WORDS, k=2)) + " " + MARKER
        records += [
            DetectionRecord(prompt, human, "human"),
            DetectionRecord(prompt, lm, "lm"),
            DetectionRecord(prompt, mixed, "mixed"),
        ]
    return records


@pytest.fixture(scope="module")
def start_model(tiny_encoder_dir, tmp_path_factory):
    """A reward model that has never seen the marker: the tiny encoder with a fresh head, saved."""
    folder = tmp_path_factory.mktemp("start") / "model"
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=24).save_pretrained(folder)
    return folder


QUICK = {"max_steps": 24, "batch_size": 8, "lr": 2e-3, "progress": False, "precision": "fp32"}


def held_out(records: list[DetectionRecord]) -> tuple[list[DetectionRecord], list[DetectionRecord]]:
    train, test = split_prompts([r.prompt for r in records], 0.25, seed=0)
    return [r for r in records if r.prompt in train], [r for r in records if r.prompt in test]


def test_tuning_raises_auroc_from_chance_to_near_one_on_held_out_prompts(start_model, tmp_path):
    train, test = held_out(synthetic_records())
    before = detection_aurocs(test, score_records(RewardModel.from_pretrained(start_model), test, precision="fp32"))
    result = tune_detector(start_model, train, TuneConfig(output_dir=str(tmp_path / "run"), anchor_coef=0.01, **QUICK))
    tuned = RewardModel.from_pretrained(result.model_dir)
    after = detection_aurocs(test, score_records(tuned, test, precision="fp32"))
    assert 0.2 < before["lm vs human"].auroc < 0.8  # a random head: near chance
    assert after["lm vs human"].auroc > 0.95
    assert after["lm vs human"].ci_low > before["lm vs human"].ci_high
    assert after["mixed vs human"].auroc > 0.9  # the mixed texts carry the marker too
    assert result.steps == QUICK["max_steps"] and tuned.info.objective == "anchored_bradley_terry"


def test_a_strong_anchor_keeps_the_rewards_near_the_starting_model(start_model, tmp_path):
    """The regulariser λ/2·(r − r₀)² (ReMoDetect §3.2): with a large λ the tuned rewards move less from
    the start's than with λ = 0, on the same pairs and steps."""
    train, test = held_out(synthetic_records())
    start = score_records(RewardModel.from_pretrained(start_model), test, precision="fp32")
    moved = {}
    for coef in (0.0, 50.0):
        config = TuneConfig(output_dir=str(tmp_path / f"run-{coef}"), anchor_coef=coef, **QUICK)
        tuned = RewardModel.from_pretrained(tune_detector(start_model, train, config).model_dir)
        scores = score_records(tuned, test, precision="fp32")
        moved[coef] = sum((a - b) ** 2 for a, b in zip(scores, start, strict=True)) / len(start)
    assert moved[50.0] < 0.5 * moved[0.0]


def test_starting_head_is_kept_not_refitted(start_model, tmp_path):
    """Tuning starts from the saved model, head included: with a zero learning rate... is impossible
    (the trainer refuses lr 0), so one tiny step must leave the scores almost where they were."""
    train, test = held_out(synthetic_records(prompts=16))
    config = TuneConfig(output_dir=str(tmp_path / "run"), **{**QUICK, "max_steps": 1, "lr": 1e-9})
    tuned = RewardModel.from_pretrained(tune_detector(start_model, train, config).model_dir)
    start = score_records(RewardModel.from_pretrained(start_model), test, precision="fp32")
    assert score_records(tuned, test, precision="fp32") == pytest.approx(start, abs=1e-4)


def test_detection_file_round_trip(tmp_path):
    records = synthetic_records(prompts=3)
    path = write_detection(tmp_path / "d.jsonl", records)
    assert [(r.prompt, r.text, r.source) for r in read_detection(path)] == [
        (r.prompt, r.text, r.source) for r in records
    ]
    assert set(json.loads(path.read_text().splitlines()[0])) == {"prompt", "text", "source"}
