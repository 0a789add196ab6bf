"""Named recipes: packaged configs that ``train --recipe`` starts from, below --config and overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.source_names import source_name
from rewardlab.runs.data import load_split
from rewardlab.runs.recipes import apply_recipe, recipe_description, recipe_names
from rewardlab.runs.sources import parse_sources
from rewardlab.training.config import TrainConfig


def resolved(args: list[str]) -> dict:
    result = CliRunner().invoke(app, ["train", "--print-config", *args])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_default_recipe_is_the_defaults_and_every_recipe_is_described():
    """``--recipe default`` is what ``make run`` trains (no recipe); every recipe loads and checks."""
    assert {"default", "general"} <= set(recipe_names())
    assert apply_recipe(TrainConfig(), "default") == TrainConfig()
    for name in recipe_names():
        assert recipe_description(name) and "\n" not in recipe_description(name)
        apply_recipe(TrainConfig(), name).check()


def test_general_recipe_names_the_four_shipped_sources_and_they_load():
    config = apply_recipe(TrainConfig(), "general")
    sources, problems = parse_sources(config.data.sources)
    assert problems == [] and config.data.source_balance
    assert [s.name for s in sources] == ["hh-harmless", "ultrafeedback", "tulu1", "finegrained"]
    data = load_split(config.data, say=lambda _: None)
    assert {source_name(p) for p in data.part("test")} == {s.name for s in sources}


def test_train_recipe_resolves_and_config_and_overrides_apply_on_top(tmp_path):
    general = resolved(["--recipe", "general"])
    assert [s["data"] for s in general["data"]["sources"]] == ["hh-harmless", "ultrafeedback", "tulu1", "finegrained"]
    assert general["data"]["source_balance"] is True and general["batch_size"] == 8
    config = tmp_path / "mine.yaml"
    config.write_text("batch_size: 4\nepochs: 3\n", encoding="utf-8")
    layered = resolved(["--recipe", "general", "--config", str(config), "epochs=2", "data.source_balance=false"])
    assert (layered["batch_size"], layered["epochs"], layered["data"]["source_balance"]) == (4, 2.0, False)
    assert len(layered["data"]["sources"]) == 4
    mine = resolved(["--recipe", "general", "--data", "pairs.jsonl"])  # --data replaces the recipe's sources
    assert (mine["data"]["path"], mine["data"]["sources"]) == ("pairs.jsonl", [])


def test_unknown_recipe_lists_the_recipes_in_one_line():
    result = CliRunner().invoke(app, ["train", "--recipe", "fastest", "--print-config"])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message
    assert message == f"error: unknown recipe 'fastest' (known: {', '.join(recipe_names())})"


def test_recipes_command_lists_each_with_its_description():
    result = CliRunner().invoke(app, ["recipes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in recipe_names():
        assert name in result.output and recipe_description(name) in result.output


def test_recipes_are_package_data():
    """A wheel ships what ``[tool.setuptools.package-data]`` names: every recipe file must match it."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["rewardlab"]
    package = Path(__file__).parents[1] / "src" / "rewardlab"
    shipped = {p for pattern in globs for p in package.glob(pattern)}
    assert all(package / "runs" / "recipes" / f"{name}.yaml" in shipped for name in recipe_names())
