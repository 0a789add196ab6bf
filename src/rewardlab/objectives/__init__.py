"""Reward objectives: pure loss functions over reward tensors, looked up by name."""

from rewardlab.objectives import bradley_terry  # noqa: F401  (registers its objectives)
from rewardlab.objectives.registry import (
    Objective,
    ObjectiveOutput,
    get_objective,
    objective_names,
    register_objective,
)

__all__ = ["Objective", "ObjectiveOutput", "get_objective", "objective_names", "register_objective"]
