"""Reward-augmented data: each scored pair becomes two goal-conditioned pairs, the second reversed."""

from __future__ import annotations

import pytest

from rewardlab.data.records import PreferencePair
from rewardlab.policy.reward_augmented import goal_conditioned_prompt, reward_augmented_pairs

TEMPLATE = "Target score: {score}."


def test_text_prompt_gives_the_pair_and_its_reversal():
    pair = PreferencePair("Name a colour.", "Blue.", "Bananas.", chosen_rating=8.0, rejected_rating=3.5, id="p1")
    forward, reverse = reward_augmented_pairs([pair], template=TEMPLATE)
    assert forward.prompt == "Target score: 8.\n\nName a colour."
    assert (forward.chosen, forward.rejected) == ("Blue.", "Bananas.")
    assert reverse.prompt == "Target score: 3.5.\n\nName a colour."
    assert (reverse.chosen, reverse.rejected) == ("Bananas.", "Blue.")
    assert (reverse.chosen_rating, reverse.rejected_rating) == (3.5, 8.0)
    assert forward.group == reverse.group == "p1"
    assert (forward.id, reverse.id) == ("p1/goal=chosen", "p1/goal=rejected")


def test_conversation_prompt_gets_the_goal_in_its_system_message():
    with_system = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"})
    assert goal_conditioned_prompt(with_system, 7, TEMPLATE) == (
        {"role": "system", "content": "Target score: 7.\n\nBe brief."},
        {"role": "user", "content": "Hi"},
    )
    assert with_system[0]["content"] == "Be brief.", "the original prompt must not be modified"
    without = ({"role": "user", "content": "Hi"},)
    assert goal_conditioned_prompt(without, 2.25, TEMPLATE) == (
        {"role": "system", "content": "Target score: 2.25."},
        {"role": "user", "content": "Hi"},
    )


def test_tied_scores_and_tied_pairs_are_left_out():
    pairs = [
        PreferencePair("q", "a", "b", chosen_rating=5.0, rejected_rating=5.0),
        PreferencePair("q", "a", "b", tie=True, chosen_rating=6.0, rejected_rating=5.0),
        PreferencePair("q", "a", "b", chosen_rating=6.0, rejected_rating=1.0),
    ]
    assert len(reward_augmented_pairs(pairs)) == 2


def test_missing_or_multi_attribute_scores_are_refused():
    with pytest.raises(ValueError, match=r"data\.jsonl:3: reward augmentation needs chosen_rating and rejected_rating"):
        reward_augmented_pairs([PreferencePair("q", "a", "b", chosen_rating=1.0, source="data.jsonl:3")])
    with pytest.raises(ValueError, match="one score per reply"):
        reward_augmented_pairs([PreferencePair("q", "a", "b", chosen_rating=(1.0, 2.0), rejected_rating=(0.0, 1.0))])
    with pytest.raises(ValueError, match=r"placeholder \{score\}"):
        goal_conditioned_prompt("q", 1.0, template="no placeholder")
