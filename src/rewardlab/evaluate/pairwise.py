"""How well a reward model orders human-labelled pairs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.metrics import bootstrap_ci, pairwise_correct
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import Precision, resolve_precision


@dataclass
class AccuracyEstimate:
    accuracy: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class PairwiseEval:
    """Accuracy with a 95 % bootstrap interval, overall and per subset, plus the reward margins."""

    overall: AccuracyEstimate
    per_subset: dict[str, AccuracyEstimate]
    mean_margin: float
    score_ties: int
    tie_pairs: int
    truncated_pairs: int
    precision: str
    chosen_scores: list[float] = field(repr=False)
    rejected_scores: list[float] = field(repr=False)
    tie_rule: str = "a pair whose two replies get exactly equal rewards counts as 1/2 correct"

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["chosen_scores"], out["rejected_scores"]
        return out


def estimate(correct: np.ndarray, seed: int = 0) -> AccuracyEstimate:
    low, high = bootstrap_ci(correct, seed=seed)
    return AccuracyEstimate(float(correct.mean()) if correct.size else float("nan"), low, high, int(correct.size))


def evaluate_pairs(
    model: RewardModel,
    pairs: Sequence[PreferencePair],
    *,
    precision: Precision = "auto",
    progress: bool = False,
) -> PairwiseEval:
    """Score both replies of every pair and summarise.

    Pairs labelled as ties have no right order, so they are scored but left out of accuracy
    (their count is reported).
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    prompts = [p.prompt for p in pairs]
    chosen = model.encode(prompts, [p.chosen for p in pairs])
    rejected = model.encode(prompts, [p.rejected for p in pairs])
    scores = model.score_ids(chosen.ids + rejected.ids, precision=precision, progress=progress)
    chosen_scores, rejected_scores = scores[: len(pairs)], scores[len(pairs) :]
    ordered = np.array([not p.tie for p in pairs])
    correct = pairwise_correct(chosen_scores, rejected_scores)
    groups: dict[str, list[float]] = defaultdict(list)
    for pair, value, keep in zip(pairs, correct, ordered, strict=True):
        if keep and pair.subset is not None:
            groups[pair.subset].append(value)
    gaps = np.asarray(chosen_scores) - np.asarray(rejected_scores)
    return PairwiseEval(
        overall=estimate(correct[ordered]),
        per_subset={name: estimate(np.asarray(v)) for name, v in sorted(groups.items())},
        mean_margin=float(gaps[ordered].mean()) if ordered.any() else float("nan"),
        score_ties=int((gaps[ordered] == 0).sum()),
        tie_pairs=int((~ordered).sum()),
        precision=resolve_precision(precision, model.model.device),
        truncated_pairs=sum(c or r for c, r in zip(chosen.truncated, rejected.truncated, strict=True)),
        chosen_scores=chosen_scores,
        rejected_scores=rejected_scores,
    )
