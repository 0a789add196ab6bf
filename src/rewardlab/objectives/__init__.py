"""Reward objectives: pure loss functions over reward tensors, looked up by name.

Each module of this package registers its objectives when imported; the registry imports them all
on the first lookup, so a new objective is one new module and no line here.
"""

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
