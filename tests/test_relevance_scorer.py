"""R³ (regularised relevance reward): its terms on hand-computed cases, the paper's property on the real
embedding model, and ``--scorer r3`` through the registry and ``rewardlab eval``."""

from __future__ import annotations

import pytest
from synthetic import synthetic_pairs, write_jsonl

from rewardlab.evaluate.relevance import (
    RelevanceScorer,
    length_incentive,
    load_relevance_scorer,
    query_text,
    regularized_relevance,
    repetition_penalty,
    word_tokens,
)
from rewardlab.evaluate.run import evaluate_data
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer

PROMPT = "How do I bake bread at home?"
ANSWER = (
    "Mix flour, water, salt and yeast into a dough, knead it for ten minutes, let it rise for an hour, "
    "shape the loaf, and bake it in a hot oven for about thirty minutes until the crust is golden."
)
UNRELATED = "The stock market closed higher today as investors cheered strong earnings from technology companies."
LOOP = " ".join([PROMPT] * 10)


def test_terms_by_hand():
    """ "a b c a b c": trigrams abc, bca, cab, abc → 3 distinct of 4, RP = 0.75; LI = 6 / 100.
    R³ with Rel = 0.5: 0.06 · 0.5 · 0.75 = 0.0225."""
    assert word_tokens("Hi, there!!") == ["Hi", ",", "there", "!!"]  # NLTK's wordpunct split
    tokens = word_tokens("a b c a b c")
    assert repetition_penalty(tokens) == 0.75
    assert length_incentive(tokens) == pytest.approx(0.06)
    assert regularized_relevance(0.5, "a b c a b c") == pytest.approx(0.0225)
    assert repetition_penalty(["a", "b"]) == 1.0  # no trigram, nothing repeated
    # one 8-token phrase looped 10 times: 80 tokens, 78 trigrams, 8 distinct
    assert repetition_penalty(word_tokens(LOOP)) == pytest.approx(8 / 78)


def test_the_query_is_the_user_turns():
    conversation = ({"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"})
    conversation += ({"role": "assistant", "content": "hello"}, {"role": "user", "content": "bread?"})
    assert query_text(conversation) == "hi bread?"
    assert query_text("plain") == "plain"


def test_a_reply_that_is_the_prompt_has_relevance_one_with_any_encoder(tiny_encoder_dir):
    scorer = load_relevance_scorer(str(tiny_encoder_dir))
    copy, unrelated = scorer.relevance([PROMPT, PROMPT], [PROMPT, UNRELATED])
    assert copy == pytest.approx(1.0, abs=1e-5) and unrelated < copy


@pytest.mark.slow
def test_regularisers_rank_an_answer_above_a_copy_and_a_loop_of_the_question():
    """The paper's point (Kim & Seo 2024): relevance alone is hacked by restating the question (the copy
    scores 1); LI penalises the short copy, but LI · Rel alone is then hacked by looping the question, which
    RP penalises; R³ = LI · Rel · RP ranks the answer first."""
    scorer = load_relevance_scorer("minilm")
    prompts = [PROMPT] * 4
    replies = [PROMPT, LOOP, ANSWER, UNRELATED]
    copy, loop, answer, unrelated = scorer.relevance(prompts, replies)
    assert copy > answer > unrelated  # the retriever alone prefers the copy
    length_only_loop, length_only_answer = (
        length_incentive(word_tokens(y)) * r for y, r in ((LOOP, loop), (ANSWER, answer))
    )
    assert length_only_loop > length_only_answer  # LI without RP prefers the loop
    r3_copy, r3_loop, r3_answer, r3_unrelated = scorer.score(prompts, replies)
    assert r3_answer > max(r3_copy, r3_loop, r3_unrelated)
    assert r3_loop == pytest.approx(length_only_loop * 8 / 78)


def test_r3_is_a_registered_scorer_named_by_its_model(tiny_encoder_dir):
    assert ScorerSpec(kind="r3").describe() == "r3(model=minilm)"
    spec = ScorerSpec(kind="R3", model=str(tiny_encoder_dir))
    assert spec.problems() == []
    assert isinstance(build_scorer(spec), RelevanceScorer)


def test_rewardlab_eval_runs_with_the_r3_scorer(tiny_encoder_dir, tmp_path):
    data = write_jsonl(synthetic_pairs(12, seed=3), tmp_path / "pairs.jsonl")
    evaluated = evaluate_data(str(tiny_encoder_dir), str(data), scorer="r3", report=tmp_path / "report")
    assert evaluated.name.startswith("r3(model=")
    assert evaluated.result.overall.n == 12
    assert (tmp_path / "report" / "eval.json").is_file()
