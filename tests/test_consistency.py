"""Contrast-pair consistency and invariance to harmless rewrites: known answers by hand, toy scorers
that read only the surface (or the batch) to show each check can fail, and the tiny reward model."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.consistency import (
    add_whitespace,
    contrast_consistency,
    evaluate_contrast,
    invariance_checks,
    preference_flips,
    read_contrast_pairs,
)
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


def test_contrast_consistency_by_hand():
    """Per contrast pair, instance a / b right (1), wrong (0) or tied (½):

    a = [1, 0, ½, 1], b = [1, 1, ½, 0]; a·b = [1, 0, ¼, 0]: consistency 1.25 / 4 = 0.3125;
    instance accuracy (2.5 / 4 + 2.5 / 4) / 2 = 0.625.
    """
    out = contrast_consistency([2, 1, 0, 3], [1, 2, 0, 1], [1, 1, 5, 0], [0, 0, 5, 1])
    assert out.consistency == pytest.approx(0.3125) and out.instance_accuracy == pytest.approx(0.625)
    assert out.accuracy_a == pytest.approx(0.625) and out.accuracy_b == pytest.approx(0.625) and out.n == 4
    with pytest.raises(ValueError, match="one score per contrast pair"):
        contrast_consistency([1, 2], [0], [1], [0])


class PromptBlind:
    """Scores a reply by its length alone, blind to the prompt: the surface reader Contrast
    Instructions is built to catch."""

    def score(self, prompts: Sequence, replies: Sequence[str]) -> list[float]:
        return [float(len(r)) for r in replies]


class Attentive:
    """Rewards a reply that names the prompt's last word (the right answer here does)."""

    def score(self, prompts: Sequence, replies: Sequence[str]) -> list[float]:
        return [float(p.split()[-1].strip("?") in r) for p, r in zip(prompts, replies, strict=True)]


def contrast_file(tmp_path):
    rows = [
        {"prompt_a": "Capital of France?", "chosen_a": "Paris, in France", "prompt_b": "Capital of Italy?",
         "chosen_b": "Rome, in Italy, the city"},
        {"prompt_a": "Colour of the sky?", "chosen_a": "Blue, the sky", "prompt_b": "Colour of the grass?",
         "chosen_b": "Green is the grass", "rejected_b": "Blue, the sky"},
    ]  # fmt: skip
    path = tmp_path / "contrast.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_contrast_pairs_catch_a_prompt_blind_scorer(tmp_path):
    pairs = read_contrast_pairs(contrast_file(tmp_path))
    assert pairs[0].rejected_a == "Rome, in Italy, the city" and pairs[0].rejected_b == "Paris, in France"
    assert pairs[0].source.endswith("contrast.jsonl:1")
    blind = evaluate_contrast(PromptBlind(), pairs)  # the longer reply wins on both prompts: one of them wrong
    assert blind.consistency == 0.0 and blind.instance_accuracy == 0.5
    attentive = evaluate_contrast(Attentive(), pairs)
    assert attentive.consistency == 1.0 and attentive.instance_accuracy == 1.0


def test_contrast_reader_lists_every_bad_row_with_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"prompt_a": "q", "chosen_a": "x", "prompt_b": "q2", "chosen_b": "y"},
        {"prompt_a": "q", "chosen_a": "", "prompt_b": "q2", "chosen_b": "y"},
        {"prompt_a": "q", "chosen_a": "x", "prompt_b": "q2"},
        {"prompt_a": "q", "chosen_a": "x", "rejected_a": "x", "prompt_b": "q2", "chosen_b": "y"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError) as error:
        read_contrast_pairs(path)
    message = str(error.value)
    assert 'bad.jsonl:2: field "chosen_a": must be non-empty text' in message
    assert 'bad.jsonl:3: field "chosen_b": is missing' in message
    assert "bad.jsonl:4: a prompt's right and wrong replies are the same text" in message
    assert "bad.jsonl:1" not in message


def test_preference_flips_by_hand():
    """Gaps before [1, 0, −1], after [1, 0.5, 0.5]: signs [+, 0, −] → [+, +, +], two flips (a tie that
    became a preference counts). Changes |r' − r|: chosen [0, 0.5, 0.5], rejected [0, 0, 1]: max 1,
    mean 2/6."""
    out = preference_flips([1, 2, 3], [0, 2, 4], [1, 2.5, 3.5], [0, 2, 3], rewrite="by hand")
    assert (out.flips, out.n, out.rewrite) == (2, 3, "by hand")
    assert out.flip_rate == pytest.approx(2 / 3)
    assert out.max_score_change == 1.0 and out.mean_score_change == pytest.approx(1 / 3)


def test_add_whitespace():
    assert add_whitespace("a b  c") == "a  b    c\n"


PAIRS = [
    PreferencePair("q1", "a b c d", "abcdefghi"),  # 7 vs 9 characters; with whitespace 11 vs 10: flips
    PreferencePair("q2", "xyzxyzxyz", "a b"),  # 9 vs 3; then 10 vs 5: keeps its order
    PreferencePair("q3", "same length", "same-length"),
]


class Length:
    def score(self, prompts: Sequence, replies: Sequence[str]) -> list[float]:
        return [float(len(r)) for r in replies]


def test_a_whitespace_sensitive_scorer_is_caught():
    """Length in characters: pair 1 flips (7 < 9, then 11 > 10), pair 2 keeps its order, pair 3 goes from
    a tie (11 = 11) to 13 > 12: two flips of three; the largest change is 4 (7 → 11). Length does not
    depend on the batch or the order: 0 there."""
    checks = invariance_checks(Length(), PAIRS, batch_size=2)
    assert checks["whitespace"].flips == 2 and checks["whitespace"].max_score_change == 4.0
    for name in ("batch_size", "candidate_order"):
        assert checks[name].flips == 0 and checks[name].max_score_change == 0.0


class BatchCentred:
    """Each reply's length minus the batch's mean length: depends on what it is scored with."""

    def score(self, prompts: Sequence, replies: Sequence[str]) -> list[float]:
        lengths = np.array([len(r) for r in replies], dtype=float)
        return (lengths - lengths.mean()).tolist()


class Positional:
    """The reply's position in the call: the order the replies come in is all it sees."""

    def score(self, prompts: Sequence, replies: Sequence[str]) -> list[float]:
        return [float(i) for i in range(len(replies))]


def test_batch_and_order_dependent_scorers_are_caught():
    # one at a time, every centred score is 0: the two strict preferences become ties
    assert invariance_checks(BatchCentred(), PAIRS)["batch_size"].flips == 2
    # in order, every chosen reply comes before its rejected one; reversed, after it: all three flip
    assert invariance_checks(Positional(), PAIRS)["candidate_order"].flips == 3


def test_tiny_reward_model_is_invariant_to_batch_size_and_order(tiny_encoder_dir):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50
    pairs = [
        PreferencePair(f"Question {i}?", "A helpful answer " * (i + 1), "No." + " really" * (3 * i % 5))
        for i in range(6)
    ]

    class FP32:
        def score(self, prompts, replies):
            return model.score(prompts, replies, precision="fp32")

    checks = invariance_checks(FP32(), pairs, batch_size=1)
    for name in ("batch_size", "candidate_order"):
        assert checks[name].flips == 0 and checks[name].max_score_change == 0.0, checks[name]
    assert checks["whitespace"].n == 6  # BERT's tokenizer drops whitespace; measured, not asserted
    with pytest.raises(ValueError, match="batch_size"):
        invariance_checks(FP32(), pairs, batch_size=0)
