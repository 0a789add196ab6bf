"""How well a reward model's step scores find a chain's first wrong step; the step scores themselves
(``step_logits``) come from ``models.step_scoring``, shared with the ``prm`` scorer kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rewardlab.data.chains import StepChain, first_wrong_step
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.process.steps import first_flagged_step


@dataclass(frozen=True)
class Localisation:
    """How often the first step scored below the threshold is the chain's first wrong step (or, for a
    chain with none, no step is scored below it), with 95 % Wilson intervals."""

    n: int
    accuracy: float
    interval: tuple[float, float]
    wrong_chains: int
    accuracy_on_wrong: float | None
    right_chains: int
    accuracy_on_right: float | None
    """None when there is no such chain."""
    step_accuracy: float
    """Share of the steps whose probability falls on the side of 0.5 (the threshold) their label does."""

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "interval": list(self.interval),
            "wrong_chains": self.wrong_chains,
            "accuracy_on_wrong": self.accuracy_on_wrong,
            "right_chains": self.right_chains,
            "accuracy_on_right": self.accuracy_on_right,
            "step_accuracy": self.step_accuracy,
        }


def localisation(chains: Sequence[StepChain], probabilities: Sequence[Tensor], threshold: float = 0.5) -> Localisation:
    """First-wrong-step localisation (the PRM800K / ProcessBench task) of labelled ``chains``."""
    if len(chains) != len(probabilities) or not chains:
        raise ValueError(
            f"{len(probabilities)} score lists for {len(chains)} chains (need one per chain, at least one)"
        )
    hits = {True: [], False: []}  # by whether the chain has a wrong step
    steps_right = steps = 0
    for chain, p in zip(chains, probabilities, strict=True):
        if chain.labels is None:
            raise ValueError(f"{chain.source or chain.id or 'a chain'}: has no step labels to evaluate against")
        truth = first_wrong_step(chain.labels, threshold)
        hits[truth is not None].append(first_flagged_step(p, threshold) == truth)
        labels = torch.tensor(chain.labels)
        steps_right += int(((p >= threshold) == (labels >= threshold)).sum())
        steps += len(labels)
    correct = sum(hits[True]) + sum(hits[False])
    n = len(chains)

    def share(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None

    return Localisation(
        n,
        correct / n,
        wilson_interval(correct, n),
        len(hits[True]),
        share(hits[True]),
        len(hits[False]),
        share(hits[False]),
        steps_right / steps,
    )
