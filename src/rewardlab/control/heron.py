"""HERON's hierarchical preference labels (Bukharin et al. 2024, *Deep RL from Hierarchical Weak Preference
Feedback*, sec. 3): instead of a human weighing every reward factor at once, rank the factors by importance
and let the most important one that tells two segments apart decide.

With factors f_1 ≻ f_2 ≻ … ≻ f_K, each with a sign s_k (+1: more is better, −1: less is better) and a tie
margin δ_k, and a segment's total of factor k, F_k(σ) = Σ_t φ_k(s_t, a_t):

    for k = 1..K:  d = s_k·(F_k(σ_a) − F_k(σ_b));  if |d| > δ_k: return "a" if d > 0 else "b"
    return "equal"

The labels need no numeric weights, only an order; a reward is then learned from them with the ordinary
Bradley-Terry learner (partial return). Here the factors are the MDP's features (``CELL_FEATURES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.control.mdp import TabularMDP
from rewardlab.control.segments import Segment, SegmentPreference

DEFAULT_ORDER = "goal,-hazard,coin,-mud,-step"
"""The delivery domain's factors by importance: reach the goal, avoid hazards, collect coins, avoid mud, be quick."""


@dataclass(frozen=True)
class Factor:
    name: str
    sign: float = 1.0
    margin: float = 0.0


def parse_factors(spec: str, feature_names: Sequence[str]) -> tuple[Factor, ...]:
    """Factors from ``"goal,-hazard,coin,-mud=0.5,-step"``: most important first, a leading ``-`` when less is
    better, ``=margin`` for a tie margin (default 0). Unknown or repeated names fail listing the known ones."""
    factors, seen = [], set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise ValueError(f"empty factor in {spec!r} (expected e.g. {DEFAULT_ORDER!r})")
        body, _, margin_text = item.partition("=")
        sign = -1.0 if body.startswith("-") else 1.0
        name = body.lstrip("+-").strip()
        if name not in feature_names:
            raise ValueError(f"unknown factor {name!r} in {spec!r}; known: {', '.join(feature_names)}")
        if name in seen:
            raise ValueError(f"factor {name!r} appears twice in {spec!r}")
        try:
            margin = float(margin_text) if margin_text else 0.0
        except ValueError:
            raise ValueError(f"margin {margin_text!r} of factor {name!r} is not a number") from None
        if margin < 0:
            raise ValueError(f"margin of factor {name!r} must be ≥ 0 (got {margin})")
        seen.add(name)
        factors.append(Factor(name, sign, margin))
    return tuple(factors)


def factor_totals(mdp: TabularMDP, segment: Segment) -> np.ndarray:
    """F(σ) = Σ_t φ(s_t, a_t), one total per feature (F,); steps from an absorbing state add 0."""
    states = np.asarray(segment.observations[:-1], dtype=int)
    return mdp.features[states, np.asarray(segment.actions, dtype=int)].sum(axis=0)


def heron_compare(
    totals_a: np.ndarray, totals_b: np.ndarray, factors: Sequence[Factor], feature_names: Sequence[str]
) -> str:
    """The label ("a", "b" or "equal") by the hierarchy above, from two segments' factor totals."""
    for factor in factors:
        k = list(feature_names).index(factor.name)
        d = factor.sign * (float(totals_a[k]) - float(totals_b[k]))
        if abs(d) > factor.margin:
            return "a" if d > 0 else "b"
    return "equal"


def heron_preferences(
    mdp: TabularMDP, pairs: Sequence[tuple[Segment, Segment]], factors: Sequence[Factor], task: str | None = None
) -> list[SegmentPreference]:
    """One HERON label a pair."""
    return [
        SegmentPreference(
            a, b, heron_compare(factor_totals(mdp, a), factor_totals(mdp, b), factors, mdp.feature_names), task
        )
        for a, b in pairs
    ]
