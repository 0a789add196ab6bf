"""Independently trained reward models scored as one ensemble, with their disagreement as uncertainty.

Members differ by seed or by bootstrap sample of the training pairs (``data.bootstrap_seed``);
Coste et al. (2024, "Reward Model Ensembles Help Mitigate Overoptimization") find that optimising
against their worst case (wco) or mean minus variance (uwo) resists over-optimisation.

Separately trained members do not share a reward scale, so each member's rewards are standardised
with its own saved statistics, (r − reward_mean) / reward_std, before they are aggregated
(``rewards.aggregate.standardise_members``): the ensemble's reward and variance are in members'
standard units. A member without statistics (not trained by rewardlab, or a run that did not
finish) cannot be standardised: then no member is, the scores are aggregated as they are, and a
``RawEnsembleWarning`` names the members at fault (``normalise=False`` asks for raw scores).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.reward_model import RewardModel, RewardModelInfo
from rewardlab.precision import Precision
from rewardlab.rewards.aggregate import aggregate_ensemble, standardise_members


class RawEnsembleWarning(UserWarning):
    """Ensemble members were aggregated on their raw scales: one lacks saved reward statistics."""


class RewardEnsemble:
    def __init__(
        self,
        members: Sequence[RewardModel],
        aggregation: str = "mean",
        uncertainty_weight: float = 0.0,
        *,
        normalise: bool = True,
        names: Sequence[str] | None = None,
    ):
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members (got {len(members)})")
        pairwise = [m for m in members if m.info.scores_pairs or m.info.head != "reward"]
        if pairwise:
            raise ValueError("ensemble members must be scalar reward models (head 'reward')")
        aggregate_ensemble(torch.zeros(1, 2), aggregation, uncertainty_weight)  # validates the options
        self.members = list(members)
        self.aggregation = aggregation
        self.uncertainty_weight = uncertainty_weight
        names = list(names) if names is not None else [f"member {i + 1}" for i in range(len(members))]
        self.statistics = member_statistics(self.members, names) if normalise else None
        """(means, stds) the members' scores are standardised with, or None: aggregated raw."""

    @classmethod
    def from_pretrained(cls, paths: Sequence[str | Path], **options) -> RewardEnsemble:
        options.setdefault("names", [str(p) for p in paths])
        return cls([RewardModel.from_pretrained(p) for p in paths], **options)

    def score_with_uncertainty(
        self,
        prompts: Sequence[Prompt],
        replies: Sequence[str],
        *,
        precision: Precision = "auto",
        progress: bool = False,
    ) -> tuple[list[float], list[float]]:
        """(aggregated reward, variance across members) per reply, of the standardised member scores."""
        scores = torch.tensor(
            [m.score(prompts, replies, precision=precision, progress=progress) for m in self.members]
        ).T
        if self.statistics is not None:
            scores = standardise_members(scores, *self.statistics)
        reward, variance = aggregate_ensemble(scores, self.aggregation, self.uncertainty_weight)
        return reward.tolist(), variance.tolist()

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str], **kwargs) -> list[float]:
        return self.score_with_uncertainty(prompts, replies, **kwargs)[0]


def has_statistics(info: RewardModelInfo) -> bool:
    """Whether a member saved a usable reward mean and a positive standard deviation."""
    mean, std = info.reward_mean, info.reward_std
    return mean is not None and std is not None and math.isfinite(mean) and math.isfinite(std) and std > 0


def member_statistics(members: Sequence[RewardModel], names: Sequence[str]) -> tuple[list[float], list[float]] | None:
    """Each member's (reward_mean, reward_std), or None with a warning when one has none.

    Standardising some members and not others would mix scales as much as standardising none,
    so one member without statistics leaves all of them raw.
    """
    missing = [name for name, m in zip(names, members, strict=True) if not has_statistics(m.info)]
    if missing:
        warnings.warn(
            f"ensemble member(s) {', '.join(missing)} have no saved reward statistics (reward_mean/reward_std, "
            "saved when a rewardlab training run finishes): every member is aggregated on its raw scale, so a "
            "member with wider rewards dominates; finish those runs (`rewardlab train --resume`) to normalise",
            RawEnsembleWarning,
            stacklevel=3,
        )
        return None
    return [float(m.info.reward_mean) for m in members], [float(m.info.reward_std) for m in members]  # type: ignore[arg-type]
