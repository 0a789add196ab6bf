"""Where reward-model ensemble members err together: the errors an ensemble cannot fix.

Eisenstein et al. 2023 ("Helping or Herding? Reward Model Ensembles Mitigate but do not Eliminate
Reward Hacking", from the abstract): ensembles help, members that differ in pretraining seed help
more than members that differ only in fine-tuning seed, and neither removes reward hacking,
"because all reward models in the ensemble exhibit similar error patterns". This module measures
that on held-out preference pairs, from every member's scores of each pair's chosen and rejected
reply. A member errs on a pair when its margin r_c − r_r is ≤ 0 (a tie in score states no
preference, so it is counted as an error here, unlike the half credit of ``rewardlab eval``):

- each member's accuracy, 1 − P(e_m = 1);
- for each two members, P(both wrong), what that would be were their errors independent
  (P(e_i)·P(e_j)), and the correlation of the error indicators (the φ coefficient);
- the shared-error fraction P(every member wrong). Averaging (mean) and the worst case (wco)
  are wrong wherever every member is: standardising keeps each member's margin's sign (it divides
  it by σ_m > 0), the mean of M non-positive margins is non-positive, and min_m z_c,m ≤ min_m z_r,m
  when z_c,m ≤ z_r,m for every m. So 1 − P(all wrong) bounds their accuracy; uwo (mean − λ·variance)
  has no such guarantee either way.
- the ensemble's accuracy under each aggregation of ``rewards.aggregate`` (mean, wco, uwo), after
  standardising each member with its own saved statistics (``standardise_members``), as
  ``models.ensemble.RewardEnsemble`` scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rewardlab.rewards.aggregate import AGGREGATIONS, aggregate_ensemble, standardise_members


@dataclass(frozen=True)
class MemberPair:
    """Two members' errors on the same pairs (indices into the member list)."""

    first: int
    second: int
    both_wrong: float
    both_wrong_if_independent: float
    error_correlation: float | None
    """φ coefficient of the two error indicators; None when one member is always (or never) wrong."""


@dataclass(frozen=True)
class EnsembleErrors:
    pairs: int
    member_accuracy: list[float]
    member_pairs: list[MemberPair]
    all_wrong: float
    """Share of pairs every member gets wrong: no aggregation of their scores by mean or wco fixes them."""
    all_wrong_if_independent: float
    any_wrong: float
    ensemble_accuracy: dict[str, float]
    standardised: bool
    uncertainty_weight: float

    @property
    def mean_error_correlation(self) -> float | None:
        values = [p.error_correlation for p in self.member_pairs if p.error_correlation is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_error_correlation": self.mean_error_correlation}


def _error_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def ensemble_errors(
    chosen: np.ndarray | Sequence[Sequence[float]],
    rejected: np.ndarray | Sequence[Sequence[float]],
    statistics: tuple[Sequence[float], Sequence[float]] | None = None,
    uncertainty_weight: float = 1.0,
) -> EnsembleErrors:
    """Member and ensemble errors from (M, P) scores of P pairs' chosen and rejected replies by M members.

    ``statistics`` (each member's reward mean and std) standardises the members before they are
    aggregated; None aggregates the raw scores (each member's own accuracy does not depend on it).
    """
    c, r = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    if c.ndim != 2 or c.shape != r.shape or c.shape[0] < 2 or c.shape[1] == 0:
        raise ValueError(
            f"need (members, pairs) scores for ≥ 2 members and ≥ 1 pair, chosen and rejected alike "
            f"(got {c.shape} and {r.shape})"
        )
    if not (np.isfinite(c).all() and np.isfinite(r).all()):
        raise ValueError("member scores must be finite")
    wrong = (c - r <= 0).astype(np.float64)  # (M, P)
    error_rate = wrong.mean(axis=1)
    member_pairs = [
        MemberPair(
            i,
            j,
            float(np.mean(wrong[i] * wrong[j])),
            float(error_rate[i] * error_rate[j]),
            _error_correlation(wrong[i], wrong[j]),
        )
        for i, j in itertools.combinations(range(c.shape[0]), 2)
    ]
    members_c, members_r = torch.from_numpy(c.T.copy()), torch.from_numpy(r.T.copy())
    if statistics is not None:
        members_c, members_r = standardise_members(members_c, *statistics), standardise_members(members_r, *statistics)
    ensemble = {}
    for method in AGGREGATIONS:
        margin = (
            aggregate_ensemble(members_c, method, uncertainty_weight)[0]
            - aggregate_ensemble(members_r, method, uncertainty_weight)[0]
        )
        ensemble[method] = float((margin > 0).double().mean())
    return EnsembleErrors(
        pairs=c.shape[1],
        member_accuracy=(1 - error_rate).tolist(),
        member_pairs=member_pairs,
        all_wrong=float(wrong.prod(axis=0).mean()),
        all_wrong_if_independent=float(error_rate.prod()),
        any_wrong=float(wrong.max(axis=0).mean()),
        ensemble_accuracy=ensemble,
        standardised=statistics is not None,
        uncertainty_weight=float(uncertainty_weight),
    )


def render_ensemble_errors_markdown(result: EnsembleErrors, members: Sequence[str], data: str) -> str:
    lines = [
        "# Ensemble member errors",
        "",
        f"- data: `{data}` ({result.pairs} pairs with a labelled order; a tie in score counts as an error)",
        *(
            f"- member {i + 1}: `{m}` — accuracy {a:.4f}"
            for i, (m, a) in enumerate(zip(members, result.member_accuracy, strict=True))
        ),
        "- members "
        + (
            "standardised with their saved reward mean and std"
            if result.standardised
            else "aggregated raw (one has no saved statistics)"
        ),
        "",
        "| members | P(both wrong) | if independent | error correlation |",
        "|---|---|---|---|",
    ]
    for p in result.member_pairs:
        corr = "–" if p.error_correlation is None else f"{p.error_correlation:.3f}"
        lines.append(
            f"| {p.first + 1} & {p.second + 1} | {p.both_wrong:.4f} | {p.both_wrong_if_independent:.4f} | {corr} |"
        )
    mean_corr = result.mean_error_correlation
    lines += [
        "",
        f"- every member wrong (shared errors): **{result.all_wrong:.4f}** "
        f"(were errors independent: {result.all_wrong_if_independent:.4f}); "
        f"at least one wrong: {result.any_wrong:.4f}",
        f"- mean error correlation: {'–' if mean_corr is None else f'{mean_corr:.3f}'}",
        f"- ensemble accuracy: mean {result.ensemble_accuracy['mean']:.4f}, wco {result.ensemble_accuracy['wco']:.4f}, "
        f"uwo (λ = {result.uncertainty_weight:g}) {result.ensemble_accuracy['uwo']:.4f}; "
        f"mean and wco cannot exceed 1 − shared = {1 - result.all_wrong:.4f}",
    ]
    return "\n".join(lines) + "\n"
