"""Rating regression: the reward is fitted to absolute ratings, alone or beside the pairwise label."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.registry import ObjectiveOutput, register_objective


def rating_squared_errors(
    reward: Tensor, rating: Tensor | None, scale: float | Sequence[float] = 1.0, shift: float | Sequence[float] = 0.0
) -> tuple[Tensor, Tensor]:
    """(r - (y - shift) / scale)² elementwise, and which ratings were given (a NaN rating is not).

    An unrated entry's error is 0 and gets no gradient, so pairs with and without ratings can share
    a batch. ``scale`` and ``shift`` standardise the ratings (e.g. shift = mean, scale = standard
    deviation) so that the reward lives on a unit scale whatever the rating scale (1-5 Likert,
    0-100...); for multi-attribute ratings they may be given per attribute.
    """
    if rating is None:
        raise ValueError("this objective needs ratings: give each pair chosen_rating and rejected_rating")
    if rating.shape != reward.shape:
        raise ValueError(f"ratings have shape {tuple(rating.shape)} but the rewards {tuple(reward.shape)}")
    scale_t = torch.as_tensor(scale, dtype=reward.dtype, device=reward.device)
    shift_t = torch.as_tensor(shift, dtype=reward.dtype, device=reward.device)
    if not bool((scale_t > 0).all()):
        raise ValueError(f"scale must be positive (got {scale})")
    rated = ~rating.isnan()
    # A finite stand-in for the missing ratings first, so that no NaN reaches the gradient.
    target = (rating.nan_to_num(0.0).to(reward.dtype) - shift_t) / scale_t
    return torch.where(rated, (reward - target) ** 2, 0.0), rated


@register_objective("regression", ignores_order=True)
def regression_loss(
    chosen: Tensor,
    rejected: Tensor,
    chosen_rating: Tensor | None = None,
    rejected_rating: Tensor | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
) -> ObjectiveOutput:
    """Mean squared error of each reply's reward against its standardised rating, per pair.

        loss = ½·[(r_c - (y_c - shift)/scale)² + (r_r - (y_r - shift)/scale)²]

    The regression-style reward model of HelpSteer2 (Wang et al. 2024, "HelpSteer2-Preference:
    Complementing Ratings with Preferences", SteerLM Regression): the reward predicts the rating.
    A reply without a rating (NaN) is left out of its pair's mean; a pair with none has loss 0.
    Ratings carry no order, so a pair labelled as a tie trains like any other (``ignores_order``:
    tied pairs are kept for this objective).
    """
    chosen_errors, chosen_rated = rating_squared_errors(chosen, chosen_rating, scale, shift)
    rejected_errors, rejected_rated = rating_squared_errors(rejected, rejected_rating, scale, shift)
    rated = (chosen_rated.to(chosen.dtype) + rejected_rated.to(chosen.dtype)).clamp(min=1)
    gap = (chosen - rejected).detach()
    return ObjectiveOutput((chosen_errors + rejected_errors) / rated, {"accuracy": (gap > 0).float(), "margin": gap})


@register_objective("bt_regression")
def bt_regression_loss(
    chosen: Tensor,
    rejected: Tensor,
    chosen_rating: Tensor | None = None,
    rejected_rating: Tensor | None = None,
    tie: Tensor | None = None,
    regression_weight: float = 1.0,
    scale: float = 1.0,
    shift: float = 0.0,
) -> ObjectiveOutput:
    """Bradley-Terry on the preference plus λ times the rating regression, per pair.

        loss = -log σ(r_c - r_r) + λ·½·[(r_c - ỹ_c)² + (r_r - ỹ_r)²],   ỹ = (y - shift)/scale

    HelpSteer2-Preference (Wang et al. 2024) finds the two kinds of label complementary and combines
    them (there by starting Bradley-Terry training from a regression model); here they are summed
    in one loss. The preference fixes the order, the ratings fix the reward's offset and scale, which
    Bradley-Terry alone leaves free; pairs without ratings (NaN) train on the preference alone. Ties
    use the target ½ as in ``bradley_terry``.
    """
    if regression_weight < 0:
        raise ValueError(f"regression_weight must be ≥ 0 (got {regression_weight})")
    preference = bradley_terry_loss(chosen, rejected, tie=tie)
    regression = regression_loss(chosen, rejected, chosen_rating, rejected_rating, scale=scale, shift=shift)
    losses = preference.losses + regression_weight * regression.losses
    return ObjectiveOutput(losses, {**preference.metrics, "regression_loss": regression.losses.detach()})
