"""``rewardlab train --print-config`` (each key with its doc), ``--version``, and nested-dict overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml
from typer.testing import CliRunner

import rewardlab.api
from rewardlab.cli import app
from rewardlab.runs.config_docs import field_docs, render_config, undocumented_keys
from rewardlab.runs.overrides import dotted_overrides
from rewardlab.training.config import TrainConfig, load_config


@dataclass
class Inner:
    """The inner section. Its second sentence is left out."""

    size: int = 3
    """How big, e.g. 3. A second sentence is left out."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Base:
    name: str = "a: b"
    """Inherited doc with ``code``."""


@dataclass
class Outer(Base):
    inner: Inner = field(default_factory=Inner)
    rate: float | None = None
    """Rate,
    over two lines."""


def test_render_config_puts_each_doc_above_its_key():
    assert render_config(Outer()) == (
        "# Inherited doc with `code`.\n"
        "name: 'a: b'\n"
        "# The inner section.\n"
        "inner:\n"
        "  # How big, e.g. 3.\n"
        "  size: 3\n"
        "  options: {}\n"
        "# Rate, over two lines.\n"
        "rate: null\n"
    )
    assert undocumented_keys(Outer()) == ["inner.options"]


def test_the_rendered_train_config_reads_back_the_same():
    config = load_config(None, {"model.max_length": 64, "objective.args": {"label_smoothing": 0.1}})
    assert yaml.safe_load(render_config(config)) == dataclasses.asdict(config)
    assert field_docs(TrainConfig)["batch_size"] == "Pairs per optimiser step, over all processes."


def test_every_train_config_key_has_a_doc():
    assert undocumented_keys(TrainConfig()) == []


def test_print_config_prints_and_does_not_train(tmp_path):
    output = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--print-config", "--output", str(output), "model.max_length=64"])
    assert result.exit_code == 0, result.output
    assert "  max_length: 64\n" in result.output
    assert "# Pairs per optimiser step, over all processes.\nbatch_size: 8\n" in result.output
    assert not output.exists()


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"rewardlab {rewardlab.__version__}\n")


def test_nested_dicts_become_dotted_keys():
    values = {"model": {"max_length": 64}, "optim.lr": 1e-5, "objective": {"args": {"beta": 0.1}}, "nope": {"a": 1}}
    assert dotted_overrides(TrainConfig, values) == {
        "model.max_length": 64,
        "optim.lr": 1e-5,
        "objective.args": {"beta": 0.1},  # a free-form option: one value, as in a YAML file
        "nope": {"a": 1},  # unknown: left for loading to report
    }


def test_train_takes_nested_dicts(monkeypatch):
    seen = {}
    monkeypatch.setattr(rewardlab.api, "run_training", lambda config, **_: seen.setdefault("config", config))
    rewardlab.api.train(model={"max_length": 64, "backbone": "smollm2"}, **{"optim.lr": 1e-4})
    config = seen["config"]
    assert (config.model.max_length, config.model.backbone, config.optim.lr) == (64, "smollm2", 1e-4)
