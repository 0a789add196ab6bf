"""``score`` refuses options the model would ignore, rather than writing rewards the user did not ask for
(issue 27, bug 6): a direction on a model without attributes, an aggregation without an ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scalar_model(tiny_encoder_dir, tmp_path_factory) -> Path:
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=24).save_pretrained(
        tmp_path_factory.mktemp("unused") / "scalar"
    )


@pytest.fixture(scope="module")
def attributes_model(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=24, outputs=2, head="attributes")
    return model.save_pretrained(tmp_path_factory.mktemp("unused") / "attributes")


@pytest.fixture
def rows(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(3)))
    return path


def score(*args: object):
    return CliRunner().invoke(app, ["score", *(str(a) for a in args)])


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("options", "said", "why"),
    [
        (["--direction", "1,0"], "--direction weighs the attributes of a multi-attribute model", "head is 'reward'"),
        (["--aggregation", "wco"], "--aggregation combines the members of an ensemble", "one reward per reply"),
        (["--uncertainty-weight", "0.5"], "--uncertainty-weight combines the members", "one reward per reply"),
    ],
)
def test_single_scalar_model_refuses_ensemble_and_attribute_options(scalar_model, rows, tmp_path, options, said, why):
    out = tmp_path / "out.jsonl"
    error = one_line_error(score(scalar_model, rows, "--output", out, *options))
    assert error.startswith(f"error: {scalar_model}: {said}")
    assert why in error
    assert not out.exists()


def test_member_ensemble_refuses_a_direction(scalar_model, rows, tmp_path):
    error = one_line_error(
        score(scalar_model, rows, "--member", scalar_model, "--output", tmp_path / "o.jsonl", "--direction", "1,0")
    )
    assert "--direction weighs the attributes" in error and "head is 'ensemble'" in error


def test_a_direction_of_the_wrong_size_is_refused_before_scoring(attributes_model, rows, tmp_path):
    error = one_line_error(score(attributes_model, rows, "--output", tmp_path / "a.jsonl", "--direction", "1,0,1"))
    assert "--direction needs one weight per attribute (2), got 3" in error


def test_options_that_apply_are_still_accepted(scalar_model, attributes_model, rows, tmp_path):
    assert score(attributes_model, rows, "--output", tmp_path / "a.jsonl", "--direction", "1,0").exit_code == 0
    ensemble = score(
        scalar_model, rows, "--member", scalar_model, "--output", tmp_path / "e.jsonl", "--aggregation", "wco"
    )
    assert ensemble.exit_code == 0, ensemble.output
