"""Pretraining-with-feedback objectives (Korbak et al. 2023): exact values on hand-computed tokens,
the data they train on, and segment scoring with its cache and threshold."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from rewardlab.data.records import DataError
from rewardlab.pretrain.blocks import encode_documents, keep_documents
from rewardlab.pretrain.corpus import Document, read_corpus, split_documents, split_segments
from rewardlab.pretrain.model import BAD_TOKEN, GOOD_TOKEN, add_control_tokens, control_token_ids
from rewardlab.pretrain.objectives import (
    PRETRAIN_OBJECTIVES,
    awr_loss,
    get_pretrain_objective,
    mle_loss,
    rwr_loss,
    unlikelihood_loss,
)
from rewardlab.pretrain.scoring import WordListScorer, percentile_threshold, score_segments

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import tiny_chatml_tokenizer

LOG_HALF = math.log(0.5)


def test_mle_is_the_negative_log_probability():
    out = mle_loss(torch.tensor([LOG_HALF, 0.0]))
    assert torch.allclose(out.losses, torch.tensor([math.log(2), 0.0]))


def test_unlikelihood_pushes_bad_tokens_down():
    """p = 0.5 good: −log 0.5 = 0.6931; p = 0.5 bad, α = 2: −2·log(1 − 0.5) = 1.3863;
    p = 0.9 bad, α = 1: −log 0.1 = 2.3026; p = 1 bad: 1 − p clamped at 1e-20, −log 1e-20 = 46.05."""
    logps = torch.tensor([LOG_HALF, LOG_HALF, math.log(0.9), 0.0])
    is_bad = torch.tensor([False, True, True, True])
    losses = unlikelihood_loss(logps, is_bad, alpha=2.0).losses
    assert losses[:2].tolist() == pytest.approx([0.693147, 1.386294], abs=1e-5)
    assert unlikelihood_loss(logps, is_bad, alpha=1.0).losses[2:].tolist() == pytest.approx(
        [2.302585, 46.0517], abs=1e-3
    )


def test_rwr_weights_each_token_by_its_segments_reward():
    """β = 2: rewards 0 and −2 give weights 1 and e^−1 = 0.3679; loss = −log 0.5 · w = 0.6931, 0.2550;
    a reward of 20 (weight e^10) is clipped at max_weight = 100."""
    logps = torch.tensor([LOG_HALF, LOG_HALF, LOG_HALF])
    out = rwr_loss(logps, torch.tensor([0.0, -2.0, 20.0]), beta=2.0, max_weight=100.0)
    assert out.losses.tolist() == pytest.approx([0.693147, 0.255000, 69.3147], abs=1e-4)
    assert out.metrics["weight"].tolist() == pytest.approx([1.0, math.exp(-1), 100.0], rel=1e-5)


def test_awr_weights_by_the_advantage_and_fits_the_value():
    """R = 0, V = 1, β = 1, α = 0.5: A = −1, w = e^−1 = 0.3679; loss = 0.5·(0.6931·0.3679) + 0.5·(1 − 0)² = 0.6275.
    R = −1, V = −1: A = 0, w = 1; loss = 0.5·0.6931 + 0 = 0.3466. The value gets the value-loss gradient
    only: ∂loss/∂V = (1 − α)·2(V − R) = 1 at the first token (the weight is computed from a detached V)."""
    values = torch.tensor([1.0, -1.0], requires_grad=True)
    out = awr_loss(torch.tensor([LOG_HALF, LOG_HALF]), torch.tensor([0.0, -1.0]), values, alpha=0.5, beta=1.0)
    assert out.losses.tolist() == pytest.approx([0.627492, 0.346574], abs=1e-5)
    out.losses.sum().backward()
    assert values.grad.tolist() == pytest.approx([1.0, 0.0])


def test_awr_with_a_zero_value_and_alpha_one_is_rwr():
    logps, rewards = torch.tensor([-0.3, -1.2, -2.0]), torch.tensor([0.5, -1.0, 0.0])
    awr = awr_loss(logps, rewards, torch.zeros(3), alpha=1.0, beta=0.7).losses
    assert torch.allclose(awr, rwr_loss(logps, rewards, beta=0.7).losses)


def test_bad_options_and_unknown_objectives_say_what_is_allowed():
    with pytest.raises(ValueError, match="beta must be > 0"):
        rwr_loss(torch.zeros(1), torch.zeros(1), beta=0.0)
    with pytest.raises(ValueError, match="registered pretraining objectives: awr, conditional, filtering, mle"):
        get_pretrain_objective("dpo")
    assert get_pretrain_objective("rwr").check_options({"gamma": 1}) == [
        "objective rwr has no option 'gamma' (its options: beta, max_weight)"
    ]
    assert PRETRAIN_OBJECTIVES.names() == ["awr", "conditional", "filtering", "mle", "rwr", "unlikelihood"]


@pytest.fixture(scope="module")
def tokenizer():
    return add_control_tokens(tiny_chatml_tokenizer())


def test_conditional_data_puts_the_control_token_before_each_segment(tokenizer):
    good, bad = control_token_ids(tokenizer)
    assert tokenizer.convert_ids_to_tokens([good, bad]) == [GOOD_TOKEN, BAD_TOKEN]
    doc = Document(("The fox. ", "The dog."))
    seg = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in doc.segments]
    stream_length = 1 + len(seg[0]) + len(seg[1]) + 2
    blocks = encode_documents(tokenizer, [doc], [[0.0, -1.0]], -0.5, stream_length, "conditional")
    expected = [tokenizer.eos_token_id, good, *seg[0], bad, *seg[1]]
    assert blocks.ids[0].tolist() == expected
    assert blocks.scores[0].tolist() == [0.0] * (2 + len(seg[0])) + [-1.0] * (1 + len(seg[1]))
    assert blocks.is_bad[0].tolist() == [False] * (2 + len(seg[0])) + [True] * (1 + len(seg[1]))
    assert blocks.is_clean[0].tolist() == [False, False] + [True] * len(seg[0]) + [False] * (1 + len(seg[1]))
    plain = encode_documents(tokenizer, [doc], [[0.0, -1.0]], -0.5, stream_length - 2, "plain")
    assert plain.ids[0].tolist() == [tokenizer.eos_token_id, *seg[0], *seg[1]]


def test_filtering_keeps_documents_whose_mean_score_reaches_the_threshold():
    docs = [Document(("a",), 0), Document(("b", "c"), 1), Document(("d",), 2)]
    kept, scores = keep_documents(docs, [[0.0], [0.0, -1.0], [-2.0]], threshold=-0.5)
    assert [d.group for d in kept] == [0, 1] and scores == [[0.0], [0.0, -1.0]]


def test_segments_are_turns_of_a_transcript_and_sentences_elsewhere():
    transcript = "\n\nHuman: hi there\n\nAssistant: Hello. How can I help?"
    assert split_segments(transcript) == ("\n\nHuman: hi there", "\n\nAssistant: Hello. How can I help?")
    assert split_segments("One. Two! Three") == ("One. ", "Two! ", "Three")
    assert "".join(split_segments("One. Two! Three")) == "One. Two! Three"


def test_the_packaged_corpus_reads_and_splits_by_pair(tmp_path):
    docs = read_corpus("hh-harmless", max_documents=40)
    assert len(docs) == 40 and all(d.segments[0].startswith("\n\nHuman:") for d in docs)
    train, test = split_documents(docs, 0.25, seed=1)
    assert {d.group for d in train}.isdisjoint({d.group for d in test}) and len(train) + len(test) == 40
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:2: has no text to pretrain on"):
        read_corpus(bad)


class CountingScorer:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def score(self, prompts, replies):
        self.seen += list(replies)
        return [float(len(r)) for r in replies]


def test_segments_are_scored_once_and_cached_per_scorer(tmp_path):
    cache = tmp_path / "scores.json"
    scorer = CountingScorer()
    assert score_segments(scorer, ["ab", "c", "ab"], "len", cache, batch_size=1) == [2.0, 1.0, 2.0]
    assert scorer.seen == ["ab", "c"]
    again = CountingScorer()
    assert score_segments(again, ["c", "dddd"], "len", cache) == [1.0, 4.0] and again.seen == ["dddd"]
    assert json.loads(cache.read_text())["scorer"] == "len"
    with pytest.raises(ValueError, match="holds scores of len, not of other"):
        score_segments(again, ["c"], "other", cache)


def test_the_word_list_scorer_counts_whole_words_and_the_threshold_is_a_percentile():
    scorer = WordListScorer(("zonk",))
    assert scorer.score(["", "", ""], ["a zonk b ZONK", "zonky", "clean"]) == [-2.0, 0.0, 0.0]
    assert percentile_threshold([0.0, 1.0, 2.0, 3.0, 4.0], 25) == 1.0  # k = round(1.25) = 1: bad = {0}
    assert percentile_threshold([0.0, 1.0, 2.0, 3.0, 4.0], 40) == 2.0  # k = 2: bad = {0, 1}
    word_scores = [-2.0] * 3 + [-1.0] * 12 + [0.0] * 85
    assert percentile_threshold(word_scores, 10) == 0.0  # the 10th lowest is −1: every −1 and −2 is bad
    assert percentile_threshold(word_scores, 2) == -1.0
    with pytest.raises(ValueError, match="every segment would be bad"):
        percentile_threshold(word_scores, 50)
    with pytest.raises(ValueError, match="percentile must be in"):
        percentile_threshold([0.0], 0)
