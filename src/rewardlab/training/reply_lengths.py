"""Reply lengths for objectives that read them (``chosen_length``/``rejected_length``), and the
training-only head outputs those objectives drop from the finished model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import PreferencePair
from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.training.batching import EncodedPairs


@dataclass
class PairsWithLengths:
    """Encoded pairs whose batches also carry each reply's length in characters (the measure of the
    length-bias metrics); everything else is the encoded pairs' own."""

    encoded: EncodedPairs
    chosen_length: list[float]
    rejected_length: list[float]

    @classmethod
    def of(cls, encoded: EncodedPairs, pairs: Sequence[PreferencePair]) -> PairsWithLengths:
        return cls(encoded, [float(len(p.chosen)) for p in pairs], [float(len(p.rejected)) for p in pairs])

    def __getattr__(self, name: str) -> Any:
        if name == "encoded":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.encoded, name)

    def __len__(self) -> int:
        return len(self.encoded)

    def _lengths(self, indices: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "chosen_length": torch.tensor([self.chosen_length[i] for i in indices], device=device),
            "rejected_length": torch.tensor([self.rejected_length[i] for i in indices], device=device),
        }

    def forward(self, model: RewardModel, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor | None], int]:
        batch, tokens = self.encoded.forward(model, indices)
        return batch | self._lengths(indices, batch["chosen"].device), tokens

    @torch.no_grad()
    def outputs(self, model: RewardModel, precision: str) -> dict[str, torch.Tensor | None]:
        batch = self.encoded.outputs(model, precision)
        return batch | self._lengths(range(len(self)), batch["chosen"].device)


def keep_first_outputs(model: RewardModel, count: int) -> None:
    """Cut the head down to its first ``count`` outputs, in place (rows of its weight and bias), so the
    saved model has ``count`` labels and scores as such."""
    head = scalar_head(model.model)
    if head is None or not isinstance(head, torch.nn.Linear):
        raise ValueError(f"cannot keep {count} head outputs of a model without a linear head")
    if head.out_features == count:
        return
    head.weight = torch.nn.Parameter(head.weight.detach()[:count].clone())
    if head.bias is not None:
        head.bias = torch.nn.Parameter(head.bias.detach()[:count].clone())
    head.out_features = count
    model.model.config.num_labels = count
