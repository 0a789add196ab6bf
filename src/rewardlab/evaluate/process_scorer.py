"""A process reward model as a scorer: each reply split into its steps, every step scored, the step
probabilities aggregated into the reply's score (``rewardlab eval --scorer prm --aggregate min``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import reply_chains, step_logits
from rewardlab.precision import Precision, resolve_precision
from rewardlab.rewards.step_aggregation import AGGREGATIONS, chain_score


@dataclass
class ProcessRewardScorer:
    """A reply's score is ``chain_score`` of its steps' probabilities σ(r_1)..σ(r_T) under ``aggregate``:
    ``min`` (Math-Shepherd), ``product`` (Lightman et al. 2023), ``last``, ``mean`` or ``sum``.

    ``last`` scores only each whole reply (it reads nothing else), the others every prefix; the scores
    are those of ``rewardlab prm score`` on the same chains, bit for bit.
    """

    model: RewardModel
    aggregate: str = "min"
    precision_request: Precision = "auto"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"--aggregate must be one of {', '.join(AGGREGATIONS)} (got {self.aggregate!r})")

    @property
    def precision(self) -> str:
        return resolve_precision(self.precision_request, self.model.model.device)

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        chains = reply_chains(prompts, replies)
        logits = step_logits(
            self.model, chains, precision=self.precision_request, outcome_only=self.aggregate == "last"
        )
        return [chain_score(torch.sigmoid(t), self.aggregate) for t in logits]
