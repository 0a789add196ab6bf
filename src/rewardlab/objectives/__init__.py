"""Reward objectives: pure loss functions over reward tensors, looked up by name."""

# Each family's module registers its objectives when imported.
from rewardlab.objectives import bradley_terry, graded, plackett_luce, regression  # noqa: F401
from rewardlab.objectives.davidson import davidson_probabilities
from rewardlab.objectives.ensemble import aggregate_ensemble, bootstrap_weights
from rewardlab.objectives.general_preference import gpm_preference_logit
from rewardlab.objectives.multi_attribute import combine_attributes
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
    "aggregate_ensemble",
    "bootstrap_weights",
    "combine_attributes",
    "davidson_probabilities",
    "get_objective",
    "gpm_preference_logit",
    "objective_names",
    "register_objective",
]
