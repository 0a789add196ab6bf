"""Named recipes: packaged configs that ``train --recipe`` starts from, below --config and overrides."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.source_names import source_name
from rewardlab.evaluate.eval_markdown import cross_validated_lines
from rewardlab.runs.data import load_split
from rewardlab.runs.recipes import (
    ESTIMATE_SUFFIX,
    apply_recipe,
    comparable_settings,
    recipe_description,
    recipe_estimate,
    recipe_names,
    recipes_folder,
)
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


def test_each_shipped_estimate_was_measured_with_its_recipe_as_it_is_now():
    """A recipe changed after its cv was measured must be measured again (or its estimate removed):
    the report would otherwise show another recipe's number."""
    shipped = sorted(recipes_folder().glob(f"*{ESTIMATE_SUFFIX}"))
    assert recipes_folder() / f"default{ESTIMATE_SUFFIX}" in shipped  # make run's headline
    for path in shipped:
        name = path.name.removesuffix(ESTIMATE_SUFFIX)
        estimate = json.loads(path.read_text(encoding="utf-8"))
        assert comparable_settings(estimate["config"]) == comparable_settings(apply_recipe(TrainConfig(), name)), name
        m = estimate["mean"]
        assert m["k"] == len(estimate["folds"]) >= 2 and m["low"] <= m["mean"] <= m["high"]
        assert m["mean"] == pytest.approx(sum(estimate["folds"]) / len(estimate["folds"]))


def test_an_estimate_applies_only_to_its_settings():
    """Where the run reports is not a setting; the learning rate is."""
    assert recipe_estimate(TrainConfig())["recipe"] == "default"
    elsewhere = TrainConfig()
    elsewhere.output_dir, elsewhere.num_threads, elsewhere.progress = "/tmp/x", 1, False
    assert recipe_estimate(elsewhere)["recipe"] == "default"
    changed = TrainConfig()
    changed.optim.lr = 1e-5
    assert recipe_estimate(changed) is None


def test_the_report_puts_the_recipe_estimate_before_the_split():
    estimate = recipe_estimate(TrainConfig())
    lines = cross_validated_lines(estimate)
    m = estimate["mean"]
    assert lines[0] == "## Cross-validated accuracy of this recipe"
    assert f"**{m['mean']:.4f}** (95 % t-interval {m['low']:.4f} – {m['high']:.4f}" in lines[2]
    assert estimate["measured"]["commit"] in lines[2] and "single held-out split" in lines[2]


def test_a_run_with_a_measured_recipe_reports_its_estimate_and_another_does_not(
    tiny_encoder_dir, tmp_path, monkeypatch
):
    """The whole path on a tiny model: a recipe folder holding a measured estimate whose config is the
    run's; the report of a run with those settings opens with it, one with another lr does not."""
    import rewardlab
    import rewardlab.runs.recipes as recipes

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(40)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = dict(data=str(pairs), backbone=str(tiny_encoder_dir), precision="fp32", max_steps=2, batch_size=8)
    first = rewardlab.train(output_dir=tmp_path / "first", progress=False, num_threads=1, **settings)
    folder = tmp_path / "recipes"
    folder.mkdir()
    estimate = json.loads((recipes_folder() / f"default{ESTIMATE_SUFFIX}").read_text(encoding="utf-8"))
    estimate["config"] = yaml.safe_load((first.model_dir.parent / "config.yaml").read_text(encoding="utf-8"))
    (folder / f"tiny{ESTIMATE_SUFFIX}").write_text(json.dumps(estimate), encoding="utf-8")
    monkeypatch.setattr(recipes, "recipes_folder", lambda: folder)

    again = rewardlab.train(output_dir=tmp_path / "again", progress=False, num_threads=1, **settings)
    report = (again.report_dir / "eval.md").read_text(encoding="utf-8")
    assert "## Cross-validated accuracy of this recipe\n\nThe `tiny` recipe over 5 folds" in report
    assert report.index("Cross-validated accuracy") < report.index("## Results")
    assert "Cross-validated accuracy of this recipe" in (again.report_dir / "eval.html").read_text(encoding="utf-8")
    assert json.loads((again.report_dir / "eval.json").read_text())["extras"]["cross_validated"]["recipe"] == "tiny"
    other = rewardlab.train(
        output_dir=tmp_path / "other", progress=False, num_threads=1, **{**settings, "optim.lr": 1e-4}
    )
    assert "Cross-validated" not in (other.report_dir / "eval.md").read_text(encoding="utf-8")
