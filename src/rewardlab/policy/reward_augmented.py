"""Reward-augmented preference data: pairs conditioned on the quality score they should reach.

Zhang et al. 2024, "Reward-Augmented Data Enhances Direct Preference Alignment of LLMs". DPO
on plain pairs only learns "y_w is better than y_l", so it unlearns rejected replies that were
nearly as good and favours chosen replies that were poor. Relabelling each scored pair into two
goal-conditioned pairs lets the policy learn the whole range of quality:

- conditioned on the goal "reach score r_w", y_w ≻ y_l (y_w is the reply that reaches it);
- conditioned on the goal "reach score r_l", y_l ≻ y_w (now y_l is the reply that reaches it).

The result is an ordinary preference dataset any loss of :mod:`rewardlab.policy.losses` trains
on; at inference the policy is prompted with the highest score (:func:`goal_conditioned_prompt`).

Choices made here, not prescribed by the paper: the goal is written into the prompt with
``template`` (prepended to a text prompt, or to the system message of a conversation, one
being added if there is none); a pair whose two scores are equal yields no augmented pair,
because with a shared goal each reply reaches it and the two relabelled pairs would contradict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rewardlab.data.records import Message, PreferencePair, Prompt

DEFAULT_GOAL_TEMPLATE = "Write a reply that a careful judge would rate {score}."
"""The goal text; ``{score}`` is replaced by the target score."""


def goal_conditioned_prompt(prompt: Prompt, score: float, template: str = DEFAULT_GOAL_TEMPLATE) -> Prompt:
    """``prompt`` with the goal "reach ``score``" written in front of it."""
    if "{score}" not in template:
        raise ValueError(f"template must contain the placeholder {{score}} (got {template!r})")
    goal = template.format(score=f"{score:g}")
    if isinstance(prompt, str):
        return f"{goal}\n\n{prompt}" if prompt else goal
    messages: list[Message] = [dict(m) for m in prompt]
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = f"{goal}\n\n{messages[0]['content']}"
    else:
        messages.insert(0, {"role": "system", "content": goal})
    return tuple(messages)


def reward_augmented_pairs(
    pairs: Sequence[PreferencePair], template: str = DEFAULT_GOAL_TEMPLATE
) -> list[PreferencePair]:
    """Turn each scored pair into its two goal-conditioned pairs (Zhang et al. 2024).

    Each pair needs scalar ``chosen_rating`` and ``rejected_rating`` (from annotators or a reward
    model). Both new pairs share the original's ``group`` (or its ``id``), so a group-aware split
    keeps them on the same side; their ids, if any, get the suffixes ``/goal=chosen`` and
    ``/goal=rejected``.
    """
    augmented: list[PreferencePair] = []
    for index, pair in enumerate(pairs):
        where = pair.source or pair.id or f"pair {index}"
        r_w, r_l = pair.chosen_rating, pair.rejected_rating
        if r_w is None or r_l is None:
            raise ValueError(f"{where}: reward augmentation needs chosen_rating and rejected_rating on every pair")
        if isinstance(r_w, tuple) or isinstance(r_l, tuple):
            raise ValueError(f"{where}: reward augmentation needs one score per reply, not per-attribute ratings")
        if pair.tie or r_w == r_l:
            continue
        group = pair.group or pair.id
        forward = dataclasses.replace(
            pair,
            prompt=goal_conditioned_prompt(pair.prompt, float(r_w), template),
            group=group,
            id=None if pair.id is None else f"{pair.id}/goal=chosen",
        )
        reverse = dataclasses.replace(
            pair,
            prompt=goal_conditioned_prompt(pair.prompt, float(r_l), template),
            chosen=pair.rejected,
            rejected=pair.chosen,
            chosen_rating=r_l,
            rejected_rating=r_w,
            margin=None,
            strength=None,
            group=group,
            id=None if pair.id is None else f"{pair.id}/goal=rejected",
        )
        augmented += [forward, reverse]
    return augmented
