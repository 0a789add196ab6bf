"""A reward model as a detector: its reward is the score, higher meaning "more likely LM-written"."""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.detect.auroc import AurocEstimate, auroc
from rewardlab.detect.records import DetectionRecord
from rewardlab.models.reward_model import RewardModel

COMPARISONS = (("lm", "human"), ("mixed", "human"), ("lm", "mixed"))
"""(positive, negative) sources reported when both are present: LM text against human text is the
detection task; mixed text shows where the partly rewritten texts fall."""


def score_records(
    model: RewardModel, records: Sequence[DetectionRecord], *, precision: str = "auto", progress: bool = False
) -> list[float]:
    """The reward model's score of every record's text as a reply to its prompt."""
    prompts, texts = [r.prompt for r in records], [r.text for r in records]
    return model.score(prompts, texts, precision=precision, progress=progress)


def detection_aurocs(records: Sequence[DetectionRecord], scores: Sequence[float]) -> dict[str, AurocEstimate]:
    """``"lm vs human"`` and the other comparisons of ``COMPARISONS`` whose two sources both occur."""
    if len(scores) != len(records):
        raise ValueError(f"{len(scores)} scores for {len(records)} records")
    by_source: dict[str, list[float]] = {}
    for record, score in zip(records, scores, strict=True):
        by_source.setdefault(record.source, []).append(score)
    found = {
        f"{positive} vs {negative}": auroc(by_source[positive], by_source[negative])
        for positive, negative in COMPARISONS
        if by_source.get(positive) and by_source.get(negative)
    }
    if "lm vs human" not in found:
        raise ValueError(f"detection needs both lm and human texts (found: {', '.join(sorted(by_source)) or 'none'})")
    return found
