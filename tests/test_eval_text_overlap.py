"""Sentence BLEU and ROUGE-L against values computed by hand (the arithmetic is in each docstring)."""

from __future__ import annotations

import math

import pytest

from rewardlab.evaluate.text_overlap import lcs_length, rouge_l, rouge_tokens, sentence_bleu, tokenize_13a


def test_13a_tokenization_splits_punctuation_but_not_numbers():
    text = "Hello, world. It costs 3.50 dollars-ish (approx)! 1,000 &amp; 5-3"
    assert tokenize_13a(text) == [
        "Hello", ",", "world", ".", "It", "costs", "3.50", "dollars-ish",
        "(", "approx", ")", "!", "1,000", "&", "5", "-", "3",
    ]  # fmt: skip


def test_identical_sentences_score_one():
    assert sentence_bleu("the cat sat on the mat", "the cat sat on the mat").score == 1.0


def test_bleu_with_exp_smoothing_of_a_missing_order():
    """hyp "the cat is on the mat" vs ref "the cat sat on the mat" (6 tokens each, BP = 1):
    p1 = 5/6, p2 = 3/5 (the cat, on the, the mat), p3 = 1/4 (on the mat), p4 = 0/3 → 1/(2·3).
    BLEU = (5/6 · 3/5 · 1/4 · 1/6)^(1/4) = (1/48)^(1/4) = 0.379918."""
    out = sentence_bleu("the cat is on the mat", ["the cat sat on the mat"])
    assert out.matches == (5, 3, 1, 0) and out.totals == (6, 5, 4, 3)
    assert out.precisions == pytest.approx((5 / 6, 3 / 5, 1 / 4, 1 / 6))
    assert out.score == pytest.approx((1 / 48) ** 0.25, abs=1e-12)
    assert out.score == pytest.approx(0.379918, abs=1e-6)


def test_short_hypothesis_uses_the_effective_order_and_the_brevity_penalty():
    """hyp "the cat" (c = 2) vs a 6-token reference: p1 = 2/2, p2 = 1/1, no 3-grams → order 2;
    BP = exp(1 − 6/2) → BLEU = e^−2 = 0.135335."""
    out = sentence_bleu("the cat", "the cat sat on the mat")
    assert out.brevity_penalty == pytest.approx(math.exp(-2))
    assert out.score == pytest.approx(math.exp(-2), abs=1e-12)


def test_no_matching_word_scores_zero():
    assert sentence_bleu("dog", "the cat sat").score == 0.0
    assert sentence_bleu("", "the cat sat").score == 0.0


def test_several_references_clip_by_the_best_and_take_the_closest_length():
    """hyp "a b c" vs refs "a b" (2) and "a b c d" (4): both lengths are 1 away, the shorter wins,
    so BP = 1 (with r = 4 it would be exp(1 − 4/3) = 0.7165); every n-gram (n ≤ 3) is in some reference."""
    out = sentence_bleu("a b c", ["a b", "a b c d"])
    assert out.reference_length == 2 and out.score == 1.0
    assert sentence_bleu("the cat", ["a cat", "the dog sat", "the cat is here"]).score == 1.0


def test_bleu_is_case_sensitive_like_sacrebleu():
    assert sentence_bleu("The Cat", "the cat").score == 0.0


def test_lcs_of_the_textbook_example():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_by_hand():
    """hyp "A cat, on the mat!" → [a, cat, on, the, mat]; ref [the, cat, sat, on, the, mat];
    LCS = cat on the mat = 4 → P = 4/5, R = 4/6, F = 2PR/(P + R) = 8/11."""
    assert rouge_tokens("A cat, on the mat!") == ["a", "cat", "on", "the", "mat"]
    out = rouge_l("A cat, on the mat!", "the cat sat on the mat")
    assert (out.precision, out.recall) == pytest.approx((4 / 5, 4 / 6))
    assert out.fmeasure == pytest.approx(8 / 11, abs=1e-12)


def test_rouge_l_takes_the_best_reference_and_zero_without_overlap():
    assert rouge_l("the gunman police killed", ["nothing here", "police killed the gunman"]).fmeasure == 0.5
    assert rouge_l("xyz", "abc").fmeasure == 0.0
    with pytest.raises(ValueError, match="at least one reference"):
        rouge_l("a", [])
