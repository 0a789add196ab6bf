"""Style bias: Markdown elements counted, accuracy split by which reply is more formatted, and the
reward-formatting rank correlation; a scorer that rewards formatting shows it, one blind to it does not."""

from __future__ import annotations

import json
import random

import pytest
from synthetic import synthetic_pairs, true_reward

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.bias import style_bias
from rewardlab.evaluate.markdown_format import formatting_score, markdown_elements
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.report import render_markdown


def test_markdown_elements_by_hand():
    text = (
        "# Title\nSome **bold** text and `code`.\n\n- one\n- two\n1. three\n\n"
        "```python\n# not a header\n- not a list item\n```\n"
    )
    counts = markdown_elements(text)
    assert (counts.headers, counts.list_items, counts.bold, counts.code) == (1, 3, 1, 2)  # fence + inline
    assert counts.total == formatting_score(text) == 7
    assert formatting_score("plain prose: 3 * 4 = 12, a - b, 2 ** 3 ** 2, #hashtag") == 0


def test_hand_computed_groups():
    """Pairs (chosen fmt, rejected fmt; chosen reward, rejected reward):
    (3, 0; 1, 0) right, (2, 1; 0, 1) wrong → chosen-more accuracy 1/2 on 2 pairs;
    (0, 4; 0, 1) wrong → chosen-less accuracy 0 on 1 pair; (1, 1; …) equal, in neither group.
    """
    result = style_bias([1, 0, 0, 5], [0, 1, 1, 3], [3, 2, 0, 1], [0, 1, 4, 1])
    assert (result.chosen_more_formatted.accuracy, result.chosen_more_formatted.n) == (0.5, 2)
    assert (result.chosen_less_formatted.accuracy, result.chosen_less_formatted.n) == (0.0, 1)
    assert result.equal_formatting == 1
    assert style_bias([1], [0], [1], [0], per_reply_rewards=False).reward_formatting_spearman is None


def formatted(text: str) -> str:
    """The same words as a titled bulleted list: 1 header + one list item per word; true reward unchanged."""
    return "# Answer\n" + "\n".join(f"- {word}" for word in text.split())


def style_pairs(n: int = 200, seed: int = 7) -> list[PreferencePair]:
    """Synthetic pairs (chosen = higher true reward) where each reply is formatted by a fair coin,
    independently of which reply is chosen."""
    rng = random.Random(seed)
    pairs = []
    for row in synthetic_pairs(n, seed=seed):
        chosen, rejected = (formatted(t) if rng.random() < 0.5 else t for t in (row["chosen"], row["rejected"]))
        pairs.append(PreferencePair(row["prompt"], chosen, rejected))
    return pairs


class FunctionScorer:
    def __init__(self, reward):
        self.reward = reward

    def score(self, prompts, replies):
        return [self.reward(reply) for reply in replies]


def test_a_scorer_that_rewards_formatting_shows_the_bias_and_one_blind_to_it_does_not():
    pairs = style_pairs()
    biased = evaluate_pairs(FunctionScorer(lambda y: true_reward(y) + 10 * formatting_score(y)), pairs).style_bias
    blind = evaluate_pairs(FunctionScorer(true_reward), pairs).style_bias
    assert biased.chosen_more_formatted.n > 30 and biased.chosen_less_formatted.n > 30
    # formatting (7 elements · 10) outweighs any true-reward gap (at most 12): right iff chosen is formatted
    assert biased.chosen_more_formatted.accuracy == 1.0 and biased.chosen_less_formatted.accuracy == 0.0
    assert biased.reward_formatting_spearman > 0.7
    # the true reward ignores formatting: right on every pair, whichever reply is formatted
    assert blind.chosen_more_formatted.accuracy == blind.chosen_less_formatted.accuracy == 1.0
    assert abs(blind.reward_formatting_spearman) < 0.15
    assert (
        blind.equal_formatting
        == biased.equal_formatting
        == len(pairs) - biased.chosen_more_formatted.n - (biased.chosen_less_formatted.n)
    )


def test_eval_reports_style_bias_in_markdown_and_json():
    result = evaluate_pairs(FunctionScorer(formatting_score), style_pairs(40))
    text = render_markdown(result, "m", "d")
    assert "accuracy when the chosen reply has more Markdown formatting" in text
    assert "Spearman correlation of reward with formatting" in text
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["style_bias"]["chosen_more_formatted"]["accuracy"] == pytest.approx(1.0)
