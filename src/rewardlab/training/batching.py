"""Pairs as token ids, and the order in which they are visited.

The order is a pure function of (seed, epoch): resuming at step k needs only k, and every
process of a data-parallel run agrees on it without talking.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from rewardlab.data.records import PreferencePair
from rewardlab.models.reward_model import RewardModel


@dataclass
class EncodedPairs:
    """Token ids of each pair's two sides plus its label fields, ready to batch."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    margin: list[float | None]
    weight: list[float]
    tie: list[bool]
    truncated: int

    def __len__(self) -> int:
        return len(self.chosen)

    @cached_property
    def lengths(self) -> list[int]:
        """The longer side of each pair: a padded batch of pairs is as wide as its longest reply."""
        return [max(len(c), len(r)) for c, r in zip(self.chosen, self.rejected, strict=True)]

    def labels(self, indices: Sequence[int]) -> dict[str, torch.Tensor | None]:
        """The per-pair fields an objective may ask for (a field no pair has is ``None``)."""
        margins = [self.margin[i] for i in indices]
        return {
            "margin": None if all(m is None for m in margins) else torch.tensor([m or 0.0 for m in margins]),
            "weight": torch.tensor([self.weight[i] for i in indices]),
            "tie": torch.tensor([self.tie[i] for i in indices]),
        }


def encode_pairs(model: RewardModel, pairs: Sequence[PreferencePair]) -> EncodedPairs:
    prompts = [p.prompt for p in pairs]
    chosen = model.encode(prompts, [p.chosen for p in pairs])
    rejected = model.encode(prompts, [p.rejected for p in pairs])
    return EncodedPairs(
        chosen=chosen.ids,
        rejected=rejected.ids,
        margin=[p.margin for p in pairs],
        weight=[p.weight for p in pairs],
        tie=[p.tie for p in pairs],
        truncated=sum(c or r for c, r in zip(chosen.truncated, rejected.truncated, strict=True)),
    )


def plan_epoch(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, window: int = 50, bucketing: bool = True
) -> list[list[int]]:
    """Shuffled batches of pairs of similar length.

    Pairs are shuffled, then sorted by length inside windows of ``window`` batches and cut into
    batches, and the batches are shuffled again: batches stay random in content and order, but
    each one pads only to a length close to its own pairs' (bucketing).
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucketing:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def micro_batches(indices: Sequence[int], lengths: Sequence[int], max_pairs: int | None, max_tokens: int | None):
    """Split one process's share of a step into forward passes by pair count and padded-token budget.

    Pairs are grouped by length so each pass pads little; the loss is normalised by the pairs of
    the whole step, so the grouping changes speed and memory, never the update.
    """
    ordered = sorted(indices, key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in ordered:
        current = groups[-1] if groups else None
        fits = current is not None and (max_pairs is None or len(current) < max_pairs)
        if fits and max_tokens is not None:  # both replies of every pair, padded to the longest
            fits = 2 * lengths[i] * (len(current) + 1) <= max_tokens
        if fits:
            current.append(i)
        else:
            groups.append([i])
    return groups
