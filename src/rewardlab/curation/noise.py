"""Known label noise and how well a method finds it: seeded flips in, precision and recall out.

A curation method is judged on data whose wrong labels are known: ``inject_flips`` reverses a seeded
random share of the pairs (symmetric noise: every pair equally likely, as in the noisy-label
experiments of Two Minds Better Than One and Secrets of RLHF Part II), and ``flag_quality`` scores
the pairs a method flagged against those it was given:

    precision = |flagged ∩ flipped| / |flagged|,   recall = |flagged ∩ flipped| / |flipped|
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.data.records import PreferencePair


def flip_pair(pair: PreferencePair) -> PreferencePair:
    """The pair with chosen and rejected (and each side's prompt) swapped: its label reversed."""
    if pair.rejected_prompt is None:
        return dataclasses.replace(pair, chosen=pair.rejected, rejected=pair.chosen)
    return dataclasses.replace(
        pair, chosen=pair.rejected, rejected=pair.chosen, prompt=pair.rejected_prompt, rejected_prompt=pair.prompt
    )


def inject_flips(pairs: Sequence[PreferencePair], rate: float, seed: int) -> tuple[list[PreferencePair], list[int]]:
    """Reverse round(rate·n) of the n ordered pairs (ties have no order to reverse), chosen by ``seed``.

    Returns the noisy pairs (same order) and the sorted indices of those flipped."""
    if not 0 <= rate <= 1:
        raise ValueError(f"flip rate must be between 0 and 1 (got {rate})")
    ordered = [i for i, p in enumerate(pairs) if not p.tie]
    count = round(rate * len(ordered))
    chosen = sorted(np.random.default_rng(seed).choice(ordered, size=count, replace=False).tolist())
    flipped = set(chosen)
    return [flip_pair(p) if i in flipped else p for i, p in enumerate(pairs)], chosen


@dataclass(frozen=True)
class FlagQuality:
    flagged: int
    truth: int
    found: int
    """|flagged ∩ truth|."""
    precision: float | None
    """None when nothing was flagged."""
    recall: float | None
    """None when there was nothing to find."""

    @property
    def f1(self) -> float | None:
        if not self.precision or not self.recall:
            return None if self.precision is None or self.recall is None else 0.0
        return 2 * self.precision * self.recall / (self.precision + self.recall)


def flag_quality(flagged: Collection[int], truth: Collection[int]) -> FlagQuality:
    """Precision and recall of the flagged pair indices against the truly wrong ones."""
    flagged_set, truth_set = set(flagged), set(truth)
    found = len(flagged_set & truth_set)
    return FlagQuality(
        flagged=len(flagged_set),
        truth=len(truth_set),
        found=found,
        precision=found / len(flagged_set) if flagged_set else None,
        recall=found / len(truth_set) if truth_set else None,
    )
