"""The command line as a package: one module per kind of command, all on the one app, listed by
``rewardlab --help`` in a fixed order, and every command importable from ``rewardlab.cli``."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer

import rewardlab.cli
from rewardlab.cli import app

HELP_ORDER = [
    "train", "cv", "dpo", "cross-dataset",  # learn
    "online",  # online
    "eval", "compare", "length-removed", "ensemble-errors",  # measure
    "score", "export", "serve",  # use
    "overopt", "daa-overopt", "sample-pairs",  # sample
    "objectives", "recipes", "policy-losses",  # lists
    "data",  # the data group
    "collect",  # the collect group (collect.py)
    "prm",  # the process reward group (process.py)
    "distill",  # the distillation group (distill.py)
    "detect",  # the detection group (detect.py)
    "pretrain",  # the pretraining-with-feedback group (pretrain.py)
    "control",  # rewards for control agents (control.py)
    "diffusion",  # diffusion models aligned with preferences (diffusion.py)
]  # fmt: skip


def registered() -> list[tuple[str, object]]:
    """(name, the function as written) of each top-level command, in registration order."""
    return [
        (info.name or info.callback.__name__.replace("_", "-"), inspect.unwrap(info.callback))
        for info in app.registered_commands
    ]


def test_help_lists_the_commands_in_the_order_of_before_the_split():
    assert list(typer.main.get_command(app).commands) == HELP_ORDER


def test_each_module_holds_one_contiguous_run_of_the_help():
    """A module's commands come together in the help: the package imports each module once, in the
    help's order, so a command added to a module appears beside its kind."""
    modules = [command.__module__ for _, command in registered()]
    runs = [m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m]
    assert len(runs) == len(set(runs)), runs
    assert runs == [f"rewardlab.cli.{m}" for m in ("learn", "online", "measure", "use", "sample", "lists")]


def test_every_module_of_the_package_is_loaded_with_it():
    """A module the package did not import would register nothing, silently."""
    folder = Path(rewardlab.cli.__file__).parent
    modules = {f"rewardlab.cli.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    assert modules - set(sys.modules) == set()


def test_every_command_is_importable_from_the_package():
    """``from rewardlab.cli import train`` (tests, scripts) reaches the registered command itself."""
    for name, command in registered():
        assert inspect.unwrap(getattr(rewardlab.cli, command.__name__)) is command, name
    data_commands = [inspect.unwrap(info.callback) for info in rewardlab.cli.data_app.registered_commands]
    data_modules = {"rewardlab.cli.data", "rewardlab.cli.curation", "rewardlab.cli.synthesis"}
    assert {c.__module__ for c in data_commands} == data_modules
    collect_commands = [inspect.unwrap(info.callback) for info in rewardlab.cli.collect.collect_app.registered_commands]
    assert {c.__module__ for c in collect_commands} == {"rewardlab.cli.collect"}
