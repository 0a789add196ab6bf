"""What to do with each pair, given how strongly a judge (an ensemble, or a peer model) supports its label.

Methods (each pair's μ is the judge's mean margin for the label as given; flagged: μ < −threshold):

- ``flip``: Secrets of RLHF Part II (Wang et al. 2024, from the abstract and its method): pairs whose
  preference strength is strongly negative are most likely mislabelled; reverse them.
- ``drop``: remove the flagged pairs instead (a negative threshold also drops weak positives).
- ``soft``: keep every pair with a soft label mixing the human's (1) and the ensemble's probability p:
  s = (1 − w)·1 + w·p (w = ``ensemble_weight``; Secrets of RLHF Part II's soft labels). A pair the
  ensemble fully backs keeps s = 1; one it fully contradicts (p = 0) gets s = 1 − w (½ at the default
  w = ½: no pull either way), so ``soft_bradley_terry`` (target s) and ``adaptive_margin`` (margin
  logit s) learn less from it.
  Where s < ½ (w > ½ and p small) the pair is written reversed with strength 1 − s.
- ``peer-review``: Two Minds Better Than One (Collaborative Reward Modeling, from the abstract): two
  reward models each judge the pairs the OTHER was trained on (``peer.py`` gives the margins), and
  the pairs a peer finds noisy are dropped; a model judging its own training pairs has memorised their
  noise, a peer has not.

Each decision also gives the strength written to the curated row: P(written chosen ≻ written
rejected) from the judge, floored at ½ (the reader's range for ``strength``; ½ = no preference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("flip", "drop", "soft", "peer-review")
ACTIONS = ("kept", "flipped", "dropped", "softened")


@dataclass(frozen=True)
class Decision:
    action: str
    reversed: bool
    """The row is written with chosen and rejected swapped."""
    strength: float | None
    """The soft label written (in [½, 1], for the written order); None for a tie."""
    mean: float
    """μ: the judge's mean margin for the label as originally given."""
    std: float | None
    """σ across the ensemble's members (None for a single judge)."""

    @property
    def flagged(self) -> bool:
        return self.action in ("flipped", "dropped")


def decide(
    method: str,
    mean: Sequence[float] | np.ndarray,
    probability: Sequence[float] | np.ndarray,
    tie: Sequence[bool],
    *,
    std: Sequence[float] | np.ndarray | None = None,
    threshold: float = 0.5,
    ensemble_weight: float = 0.5,
) -> list[Decision]:
    """One decision per pair from the judge's mean margin μ and probability p that the label is right."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    if not math.isfinite(threshold):
        raise ValueError(f"--threshold must be a finite number (got {threshold})")
    if not 0 <= ensemble_weight <= 1:
        raise ValueError(f"--ensemble-weight must be between 0 and 1 (got {ensemble_weight})")
    spread = [None] * len(tie) if std is None else [float(s) for s in std]
    out = []
    for mu, p, is_tie, sd in zip(mean, probability, tie, spread, strict=True):
        mu, p = float(mu), float(p)
        if is_tie:
            out.append(Decision("kept", False, None, mu, sd))
            continue
        flagged = mu < -threshold
        if method == "soft":
            s = (1 - ensemble_weight) + ensemble_weight * p
            out.append(Decision("softened", s < 0.5, max(s, 1 - s), mu, sd))
        elif flagged and method == "flip":
            out.append(Decision("flipped", True, max(1 - p, 0.5), mu, sd))
        elif flagged:
            out.append(Decision("dropped", False, max(p, 0.5), mu, sd))
        else:
            out.append(Decision("kept", False, max(p, 0.5), mu, sd))
    return out


def curriculum_order(mean: Sequence[float] | np.ndarray) -> list[int]:
    """Pair indices from easy to hard: the judge's margin for the label, largest first (Two Minds
    Better Than One's curriculum, from the abstract: learn the clear preferences before the subtle
    ones). Stable, so equal margins keep the file's order."""
    return sorted(range(len(mean)), key=lambda i: -float(mean[i]))
