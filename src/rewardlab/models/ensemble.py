"""Independently trained reward models scored as one ensemble, with their disagreement as uncertainty.

Members differ by seed or by bootstrap sample of the training pairs (``data.bootstrap_seed``);
Coste et al. (2024, "Reward Model Ensembles Help Mitigate Overoptimization") find that optimising
against their worst case (wco) or mean minus variance (uwo) resists over-optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import Precision
from rewardlab.rewards.aggregate import aggregate_ensemble


class RewardEnsemble:
    def __init__(self, members: Sequence[RewardModel], aggregation: str = "mean", uncertainty_weight: float = 0.0):
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members (got {len(members)})")
        pairwise = [m for m in members if m.info.scores_pairs or m.info.head != "reward"]
        if pairwise:
            raise ValueError("ensemble members must be scalar reward models (head 'reward')")
        aggregate_ensemble(torch.zeros(1, 2), aggregation, uncertainty_weight)  # validates the options
        self.members = list(members)
        self.aggregation = aggregation
        self.uncertainty_weight = uncertainty_weight

    @classmethod
    def from_pretrained(cls, paths: Sequence[str | Path], **options) -> RewardEnsemble:
        return cls([RewardModel.from_pretrained(p) for p in paths], **options)

    def score_with_uncertainty(
        self,
        prompts: Sequence[Prompt],
        replies: Sequence[str],
        *,
        precision: Precision = "auto",
        progress: bool = False,
    ) -> tuple[list[float], list[float]]:
        """(aggregated reward, variance across members) per reply."""
        scores = torch.tensor(
            [m.score(prompts, replies, precision=precision, progress=progress) for m in self.members]
        ).T
        reward, variance = aggregate_ensemble(scores, self.aggregation, self.uncertainty_weight)
        return reward.tolist(), variance.tolist()

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str], **kwargs) -> list[float]:
        return self.score_with_uncertainty(prompts, replies, **kwargs)[0]
