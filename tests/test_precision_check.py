"""One precision check (``rewardlab.precision.precision_problem``) behind every configuration that takes one."""

from __future__ import annotations

import re

import pytest

from rewardlab.policy.daa_overopt import DAAOveroptConfig
from rewardlab.policy.run_config import DPORunConfig
from rewardlab.policy.trainer import PolicyTrainConfig
from rewardlab.precision import PRECISIONS, precision_problem, resolve_precision
from rewardlab.sampling.overopt import OveroptConfig
from rewardlab.sampling.rso_pairs import RSOPairsConfig
from rewardlab.serve.server import ServeConfig
from rewardlab.training.config import TrainConfig

MESSAGE = "must be auto, bf16 or fp32 (got 'fp16')"


def test_precision_problem_names_the_option_and_the_allowed_values():
    assert PRECISIONS == ("auto", "bf16", "fp32")
    assert all(precision_problem(value) is None for value in PRECISIONS)
    assert precision_problem("fp16") == f"precision {MESSAGE}"
    assert precision_problem("fp16", "--precision") == f"--precision {MESSAGE}"
    assert precision_problem("BF16") == "precision must be auto, bf16 or fp32 (got 'BF16')"  # no silent case folding
    assert precision_problem(None) == "precision must be auto, bf16 or fp32 (got None)"
    with pytest.raises(ValueError, match="^" + re.escape(f"precision {MESSAGE}") + "$"):
        resolve_precision("fp16")  # type: ignore[arg-type]
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (TrainConfig(precision="fp16"), f"precision {MESSAGE}"),
        (DPORunConfig(train=PolicyTrainConfig(precision="fp16")), f"train.precision {MESSAGE}"),
        (ServeConfig(precision="fp16"), f"precision {MESSAGE}"),  # type: ignore[arg-type]
        (DAAOveroptConfig(gold="gold", gold_precision="fp16"), f"--precision {MESSAGE}"),  # type: ignore[arg-type]
        (OveroptConfig("policy", "gold", ["proxy"], ["hi"], precision="fp16"), f"precision {MESSAGE}"),  # type: ignore[arg-type]
        (RSOPairsConfig("policy", "rm", ["hi"], precision="fp16"), f"precision {MESSAGE}"),  # type: ignore[arg-type]
    ],
    ids=["train", "dpo", "serve", "daa-overopt", "overopt", "sample-pairs"],
)
def test_every_configuration_reports_a_bad_precision_by_its_option(config, expected):
    problems = config.problems()
    assert expected in problems
    assert not any("precision" in p and p != expected for p in problems)  # said once
