"""Reward objectives: pure loss functions over reward tensors, looked up by name."""

# Each family's module registers its objectives when imported.
from rewardlab.objectives import bradley_terry, graded, plackett_luce, regression  # noqa: F401
from rewardlab.objectives.davidson import davidson_probabilities
from rewardlab.objectives.ensemble import bootstrap_weights
from rewardlab.objectives.registry import (
    Objective,
    ObjectiveOutput,
    get_objective,
    objective_names,
    register_objective,
)

__all__ = [
    "Objective",
    "ObjectiveOutput",
    "bootstrap_weights",
    "davidson_probabilities",
    "get_objective",
    "objective_names",
    "register_objective",
]
