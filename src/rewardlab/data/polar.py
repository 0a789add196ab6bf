"""Policy-discriminator pairs (POLAR: "Pre-Trained Policy Discriminators are General Reward Models",
Dou et al. 2025).

POLAR's reward r(x, y_ref, y) says how likely reply y comes from the same policy as a reference reply
y_ref to prompt x. It is pre-trained on replies of many policies with Bradley-Terry pairs

    chosen = another reply of the reference's policy,   rejected = a reply of a different policy,

and then used with a reference that shows what is wanted (a gold answer, a preferred reply). Here the
reference is written into the prompt (``with_reference``), so a POLAR model is an ordinary reward
model trained by ``rewardlab train`` on the pairs ``policy_pairs`` builds, and scored through the
``polar`` scorer, which writes each prompt's reference in the same way.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from rewardlab.data.prompts import prompt_key
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, PreferencePair, Prompt
from rewardlab.data.schema import parse_prompt, read_text

REFERENCE_HEADER = "[Reference reply]"


def with_reference(prompt: Prompt, reference: str) -> Prompt:
    """The prompt a policy discriminator reads: the prompt, then the reference reply under a header
    (in a conversation, added to the last message)."""
    block = f"\n\n{REFERENCE_HEADER}\n{reference}"
    if isinstance(prompt, str):
        return prompt + block
    *head, last = prompt
    return (*head, {**last, "content": last["content"] + block})


def read_policy_replies(path: str | Path) -> list[tuple[Prompt, str]]:
    """(prompt, reply) rows of one policy's file (fields ``prompt`` and ``reply``; a prompt may repeat)."""
    rows = []
    for location, row in iter_rows(path):
        for name in ("prompt", "reply"):
            if name not in row:
                raise DataError(location, "is missing (a policy's file has prompt and reply)", name)
        rows.append((parse_prompt(row["prompt"], location, "prompt"), read_text(row["reply"], location, "reply")))
    return rows


def policy_pairs(replies: Mapping[str, Sequence[tuple[Prompt, str]]], seed: int = 0) -> list[PreferencePair]:
    """For every prompt, every policy with two distinct replies to it, and every other policy with one:
    a pair whose prompt holds one reply of the first policy as the reference, chosen another of its
    replies and rejected one of the other policy's (drawn with ``seed``). ``subset`` names the two policies."""
    if len(replies) < 2:
        raise ValueError(f"policy pairs need replies of at least two policies (got {len(replies)})")
    by_prompt: dict = {}
    for policy, rows in replies.items():
        for prompt, reply in rows:
            entry = by_prompt.setdefault(prompt_key(prompt), (prompt, {}))
            texts = entry[1].setdefault(policy, [])
            if reply not in texts:
                texts.append(reply)
    rng = random.Random(seed)
    pairs = []
    for prompt, texts in by_prompt.values():
        for policy, own in texts.items():
            if len(own) < 2:
                continue
            for other, theirs in texts.items():
                if other == policy:
                    continue
                reference, chosen = rng.sample(own, 2)
                rejected = rng.choice(theirs)
                if rejected == chosen:
                    continue
                pairs.append(
                    PreferencePair(with_reference(prompt, reference), chosen, rejected, subset=f"{policy} vs {other}")
                )
    if not pairs:
        raise ValueError("no pairs: no prompt has two replies of one policy and a reply of another")
    return pairs
