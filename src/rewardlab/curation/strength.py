"""Per-pair preference strength from an ensemble of reward models (Secrets of RLHF Part II).

Wang et al. 2024 ("Secrets of RLHF in Large Language Models Part II: Reward Modeling", read from the
abstract and its description of the method) measure a pair's preference strength by a vote of M
reward models trained on the same data with different seeds: with member m's margin
d_m = r_m(chosen) − r_m(rejected),

    strength  μ = (1/M)·Σ_m d_m,        spread  σ = sqrt((1/M)·Σ_m (d_m − μ)²)

A strongly negative μ says the ensemble prefers the rejected reply (a likely wrong label), μ near 0
an ambiguous pair, and a large σ a pair the members disagree on. Each member's margin is its own
Bradley-Terry log-odds, so the ensemble's probability that ``chosen`` is better is the mean of
σ(d_m) (``soft_label``), the soft label the strength-aware objectives read.

The maths here is pure (arrays in, arrays out); ``score_members`` does the model scoring, one member
at a time (batched, with a progress bar), so an ensemble needs the memory of one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.precision import Precision


@dataclass(frozen=True)
class Strength:
    """Per-pair ensemble statistics: the members' margins (M, P), their mean, spread and soft label."""

    margins: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    probability: np.ndarray
    """P(chosen ≻ rejected) = mean over members of σ(d_m)."""

    @property
    def agreement(self) -> np.ndarray:
        """The share of members whose margin has the sign of the majority, per pair (1: unanimous)."""
        positive = (self.margins > 0).mean(axis=0)
        return np.maximum(positive, 1 - positive)


def preference_strength(margins: np.ndarray | Sequence[Sequence[float]]) -> Strength:
    """Mean, (population) standard deviation and soft label of (M members, P pairs) margins."""
    d = np.asarray(margins, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] == 0:
        raise ValueError(f"need margins of shape (members, pairs) with ≥ 1 member and ≥ 1 pair (got {d.shape})")
    if not np.isfinite(d).all():
        raise ValueError("member margins must be finite")
    return Strength(d, d.mean(axis=0), d.std(axis=0), soft_label(d))


def soft_label(margins: np.ndarray) -> np.ndarray:
    """Mean over members (axis 0) of σ(d_m), computed stably for large |d|."""
    d = np.asarray(margins, dtype=np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * d))).mean(axis=0)


def score_members(
    pairs: Sequence[PreferencePair],
    models: Sequence[str | Path],
    *,
    precision: Precision = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Each model's margin r(chosen) − r(rejected) on each pair: an (M, P) array.

    Models are loaded one at a time and freed; ``RewardModel.score`` batches and shows the bar."""
    from rewardlab.models.reward_model import RewardModel

    prompts = [p.prompt for p in pairs] + [p.prompt_of_rejected for p in pairs]
    replies = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rows = []
    for path in models:
        model = RewardModel.from_pretrained(path)
        if model.info.scores_pairs or model.info.head != "reward":
            raise ValueError(f"{path}: curation needs scalar reward models (head 'reward')")
        scores = np.asarray(model.score(prompts, replies, precision=precision, progress=progress), dtype=np.float64)
        rows.append(scores[: len(pairs)] - scores[len(pairs) :])
        del model
    return np.stack(rows)
