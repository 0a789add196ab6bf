"""Multi-attribute rewards: one output per rated attribute, combined at use time along a user's direction."""

from __future__ import annotations

from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, head_size_option, register_objective
from rewardlab.objectives.regression import rating_squared_errors
from rewardlab.rewards.aggregate import combine_attributes

ATTRIBUTE_COUNT = head_size_option("attributes")


@register_objective("multi_attribute_regression", head_size=ATTRIBUTE_COUNT, head="attributes")
def multi_attribute_regression_loss(
    chosen: Tensor,
    rejected: Tensor,
    chosen_rating: Tensor | None = None,
    rejected_rating: Tensor | None = None,
    attributes: int = 2,
    scale: float | list[float] = 1.0,
    shift: float | list[float] = 0.0,
    direction: list[float] | None = None,
    tie: Tensor | None = None,
) -> ObjectiveOutput:
    """Mean squared error of each attribute's reward against its standardised rating, per pair.

        loss = mean over the given ratings a, replies i ∈ {c, r} of (r_{i,a} - (y_{i,a} - shift_a)/scale_a)²

    The multi-objective reward model of DPA (Wang et al. 2024, "Arithmetic Control of LLMs...") and of
    ArmoRM's first stage (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward
    Modeling and Mixture-of-Experts"): A outputs regressed on A attribute ratings (helpfulness,
    verbosity...). A NaN rating (attribute not rated) is left out. Accuracy is that of
    ``combine_attributes`` along ``direction`` (default: all attributes weighted equally). Ratings
    carry no order, so a pair labelled as a tie trains like any other (``tie`` is taken to say so).
    """
    del tie
    count = ATTRIBUTE_COUNT({"attributes": attributes})
    if chosen.dim() != 2 or chosen.shape[-1] != count:
        raise ValueError(
            f"multi_attribute_regression with attributes={count} needs (B, {count}) rewards per reply "
            f"(got {tuple(chosen.shape)})"
        )
    chosen_errors, chosen_rated = rating_squared_errors(chosen, chosen_rating, scale, shift)
    rejected_errors, rejected_rated = rating_squared_errors(rejected, rejected_rating, scale, shift)
    rated = chosen_rated.sum(dim=-1) + rejected_rated.sum(dim=-1)
    losses = (chosen_errors.sum(dim=-1) + rejected_errors.sum(dim=-1)) / rated.clamp(min=1).to(chosen.dtype)
    weights = [1.0] * count if direction is None else direction
    gap = (combine_attributes(chosen, weights) - combine_attributes(rejected, weights)).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})
