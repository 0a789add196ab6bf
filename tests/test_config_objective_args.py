"""Objective options are checked with the rest of the config, before any data is read (issue 27, bug 7)."""

from __future__ import annotations

import pytest

from rewardlab.objectives import get_objective, objective_names
from rewardlab.training.config import ConfigError, load_config


@pytest.mark.parametrize("name", objective_names())
def test_every_objective_accepts_its_own_defaults(name: str) -> None:
    """The dummy batch is well formed for every registered objective, so it never blames good options."""
    assert get_objective(name).check_values({}) == []


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["objective.args.label_smoothing=0.7"], "label_smoothing must be in [0, 0.5) (got 0.7)"),
        (["objective.name=davidson", "objective.args.nu=-1"], "nu must be ≥ 0 (got -1)"),
        (["objective.name=ensemble_bradley_terry", "objective.args.members=0"], "members must be a positive integer"),
        (["objective.name=regression", "objective.args.scale=0"], "scale must be positive (got 0)"),
        (["objective.name=adaptive_margin", "objective.args.gamma=-2"], "gamma must be ≥ 0 (got -2)"),
    ],
)
def test_bad_option_values_fail_at_config_time(overrides: list[str], said: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, overrides)
    assert f"objective.args: {said}" in str(raised.value)


def test_option_value_problems_are_listed_with_the_others() -> None:
    """Every problem at once: a bad option value does not hide a bad learning rate."""
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["objective.args.label_smoothing=0.7", "optim.lr=-1"])
    assert "optim.lr must be positive" in str(raised.value)
    assert "objective.args: label_smoothing" in str(raised.value)


def test_unknown_option_is_reported_once() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["objective.args.smoothing=0.1"])
    assert str(raised.value).count("has no option 'smoothing'") == 1
    assert "objective.args:" not in str(raised.value)
