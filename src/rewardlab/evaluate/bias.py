"""Length bias: does the reward model prefer longer replies whatever they say?

Reward models learn that longer answers tend to win human comparisons and then reward length
itself, which a policy exploits by padding (Singhal et al. 2023, "A Long Way to Go: Investigating
Length Correlations in RLHF"). Two signs of it, both pure functions of rewards and lengths:

- accuracy split by whether the chosen reply is the longer or the shorter one: a length-biased
  model is right far more often when the preferred reply also happens to be longer;
- the Spearman rank correlation between reward and length over all scored replies.

The first needs only the order of each pair, so it holds for a model that compares pairs
(preference embeddings, a pairwise judge) too; the second needs a reward per reply, which such a
model does not have, and is then left out (None) rather than computed on the pair's ±ℓ/2.

Style bias (``style_bias``) asks the same two questions of Markdown formatting (headers, lists,
bold, code; ``markdown_format.py``) in place of length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import spearmanr

from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct


@dataclass
class LengthBiasOutput:
    """Accuracy (95 % bootstrap CI) when the chosen reply is longer / shorter, and reward-length correlation.

    ``equal_length`` pairs (same length on both sides) are in neither group. ``reward_length_spearman``
    is None when the scores are not rewards of single replies (a model that compares pairs).
    """

    chosen_longer: AccuracyEstimate
    chosen_shorter: AccuracyEstimate
    equal_length: int
    reward_length_spearman: float | None
    unit: str


def _columns(**arrays: ArrayLike) -> list[np.ndarray]:
    columns = [np.asarray(a, dtype=float) for a in arrays.values()]
    if any(c.ndim != 1 for c in columns) or len({c.size for c in columns}) != 1:
        shapes = ", ".join(f"{name} {c.shape}" for name, c in zip(arrays, columns, strict=True))
        raise ValueError(f"need flat arrays of equal length, one value per reply or pair (got {shapes})")
    return columns


def reward_length_spearman(rewards: ArrayLike, lengths: ArrayLike) -> float:
    """Spearman's ρ between reward and length: Pearson's correlation of their ranks, ties at mean rank.

    Ranks, not values, because the question is whether longer replies score higher at all, not
    whether reward grows linearly with length. NaN when either side is constant (no ranking).
    """
    rewards, lengths = _columns(rewards=rewards, lengths=lengths)
    if rewards.size < 2 or np.ptp(rewards) == 0 or np.ptp(lengths) == 0:
        return float("nan")
    return float(spearmanr(rewards, lengths).statistic)


def length_bias(
    chosen_scores: ArrayLike,
    rejected_scores: ArrayLike,
    chosen_lengths: ArrayLike,
    rejected_lengths: ArrayLike,
    *,
    unit: str = "characters",
    seed: int = 0,
    per_reply_rewards: bool = True,
) -> LengthBiasOutput:
    """Accuracy on chosen-longer and chosen-shorter pairs, and ρ(reward, length) over both replies of every pair.

    Lengths are whatever the caller measures (``unit`` names it: characters of the reply, or its
    tokens). Ties in score count 1/2, as everywhere (``metrics.pairwise_correct``). Without
    ``per_reply_rewards`` (the scores are ±ℓ/2 of a pair's log-odds ℓ) there is no ρ: None.
    """
    longer, shorter, equal, rho = _by_sign(
        chosen_scores, rejected_scores, chosen_lengths, rejected_lengths, seed, per_reply_rewards
    )
    return LengthBiasOutput(longer, shorter, equal, rho, unit=unit)


def _by_sign(
    chosen_scores: ArrayLike,
    rejected_scores: ArrayLike,
    chosen_measure: ArrayLike,
    rejected_measure: ArrayLike,
    seed: int,
    per_reply_rewards: bool,
) -> tuple[AccuracyEstimate, AccuracyEstimate, int, float | None]:
    """Accuracy where the chosen reply measures more and where it measures less than the rejected one,
    the count of pairs that measure the same, and ρ(reward, measure) over every reply (or None)."""
    chosen_scores, rejected_scores, chosen_measure, rejected_measure = _columns(
        chosen_scores=chosen_scores,
        rejected_scores=rejected_scores,
        chosen_measure=chosen_measure,
        rejected_measure=rejected_measure,
    )
    correct = pairwise_correct(chosen_scores, rejected_scores)
    more, less = chosen_measure > rejected_measure, chosen_measure < rejected_measure
    rho = None
    if per_reply_rewards:  # a rank correlation of reward with any per-reply measure
        rho = reward_length_spearman(
            np.concatenate([chosen_scores, rejected_scores]), np.concatenate([chosen_measure, rejected_measure])
        )
    return estimate(correct[more], seed=seed), estimate(correct[less], seed=seed), int((~more & ~less).sum()), rho


@dataclass
class StyleBiasOutput:
    """Accuracy (95 % bootstrap CI) when the chosen reply has more / less Markdown formatting than the
    rejected one, and the reward-formatting correlation.

    Formatting is ``markdown_format.formatting_score``: the count of headers, list items, bold spans
    and code. ``equal_formatting`` pairs are in neither group; ``reward_formatting_spearman`` is None
    when the scores are not rewards of single replies (a model that compares pairs).
    """

    chosen_more_formatted: AccuracyEstimate
    chosen_less_formatted: AccuracyEstimate
    equal_formatting: int
    reward_formatting_spearman: float | None


def style_bias(
    chosen_scores: ArrayLike,
    rejected_scores: ArrayLike,
    chosen_formatting: ArrayLike,
    rejected_formatting: ArrayLike,
    *,
    seed: int = 0,
    per_reply_rewards: bool = True,
) -> StyleBiasOutput:
    """Length bias's two signs with formatting in place of length (Zhang et al. 2024, "From Lists to
    Emojis: How Format Bias Affects Model Alignment"): accuracy on chosen-more-formatted and
    chosen-less-formatted pairs, and Spearman's ρ(reward, formatting score) over both replies of
    every pair. A model that rewards formatting is right far more often in the first group than in
    the second, whatever the replies say; one blind to it scores the same in both.
    """
    return StyleBiasOutput(
        *_by_sign(chosen_scores, rejected_scores, chosen_formatting, rejected_formatting, seed, per_reply_rewards)
    )
