"""Config: YAML, dotted overrides, every error at once, and the saved copy."""

from __future__ import annotations

import pytest
import yaml

from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.training.config import ConfigError, TrainConfig, load_config
from rewardlab.training.trainer import build_optimizer


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("epochs: 3\noptim:\n  lr: 1.0e-4\nmodel:\n  backbone: smollm2\n")
    config = load_config(path, ["optim.lr=1e-5", "objective.args.label_smoothing=0.1", "max_steps=7"])
    assert config.epochs == 3.0 and config.model.backbone == "smollm2"
    assert config.optim.lr == 1e-5  # YAML reads 1e-5 as text; it still becomes a float
    assert config.objective.args == {"label_smoothing": 0.1}
    assert config.max_steps == 7


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("batch_size: 0\nnot_a_key: 1\noptim:\n  lr: fast\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["model.max_lenght=5", "epochs", "objective.args.smoothing=0.1"])
    text = str(error.value)
    for expected in (
        "unknown key 'not_a_key'",
        "optim.lr = 'fast' is not a valid float",
        "model.max_lenght",
        "'epochs' is not key=value",
    ):
        assert expected in text, text


def test_validation_lists_value_problems_together():
    with pytest.raises(ConfigError) as error:
        bad = ["batch_size=0", "objective.args.smoothing=0.1", "precision=fp16", "optim.head_lr=0"]
        load_config(None, [*bad, "micro_batch_tokens=all"])
    problems = error.value.problems
    assert len(problems) == 5
    assert any("micro_batch_tokens must be a positive integer, auto or null (got 'all')" in p for p in problems)
    assert any("optim.head_lr must be positive" in p for p in problems)
    assert any("batch_size must be a positive integer" in p for p in problems)
    assert any("has no option 'smoothing'" in p for p in problems)
    assert any("precision must be auto, bf16 or fp32" in p for p in problems)


def test_saved_config_round_trips(tmp_path):
    config = load_config(None, ["optim.lr=2e-5", "data.path=pairs.jsonl"])
    config.save(tmp_path / "saved.yaml")
    again = load_config(tmp_path / "saved.yaml")
    assert again == config
    assert yaml.safe_load((tmp_path / "saved.yaml").read_text())["optim"]["lr"] == 2e-5
    assert isinstance(again, TrainConfig)


def test_head_learning_rate_applies_to_the_head_only(tiny_encoder_dir):
    model = RewardModel.from_backbone(str(tiny_encoder_dir))
    config = load_config(None, ["optim.lr=1e-5", "optim.head_lr=1e-3"])
    optimizer, _ = build_optimizer(model, config, total_steps=10)
    head = set(scalar_head(model.model).parameters())
    for group in optimizer.param_groups:
        assert group["initial_lr"] == (1e-3 if set(group["params"]) <= head else 1e-5)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.model.parameters()))
