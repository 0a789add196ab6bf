"""What the CLI prints for people reads whole: help as prose, names never cut."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import click
import typer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.objectives import objective_names


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_help_shows_each_docstring_paragraph_as_one_line_on_a_wide_terminal():
    """Typer's rich mode kept the docstrings' line breaks, and then wrapped those lines again at
    the terminal's width, so a paragraph read as fragments of uneven length."""
    for path, command in commands(typer.main.get_command(app)):
        shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "2000"})
        assert shown.exit_code == 0, shown.output
        lines = [line.strip() for line in shown.output.splitlines()]
        for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
            assert " ".join(paragraph.replace("`", "").split()) in lines, (path, paragraph)


def test_objectives_listing_shows_every_name_whole_on_an_80_column_terminal():
    """The name is what users pass as ``objective=``; rich cut the longest to 'multi_attribute_regres…'."""
    shown = CliRunner().invoke(app, ["objectives"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    first_cells = {line.split("│")[1].strip() for line in shown.output.splitlines() if line.startswith("│")}
    assert set(objective_names()) <= first_cells


def test_policy_losses_listing_shows_every_name_whole_with_its_options_on_an_80_column_terminal():
    """`dpo --help` pointed at "rewardlab.policy", a Python module: the CLI could not list the losses."""
    from rich.cells import cell_len

    from rewardlab.policy import get_policy_loss, policy_loss_names

    shown = CliRunner().invoke(app, ["policy-losses"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    rows = [line.split("│") for line in shown.output.splitlines() if line.startswith("│")]
    assert set(policy_loss_names()) <= {row[1].strip() for row in rows}
    assert {"dpo", "ipo", "simpo", "tgdpo"} <= set(policy_loss_names())
    options = " ".join(row[2].strip() for row in rows)
    assert "beta=0.1" in options and all(cell_len(line) <= 80 for line in shown.output.splitlines())
    assert get_policy_loss("dpo").summary.split()[0] in shown.output


def test_dpo_help_names_the_command_that_lists_the_losses():
    shown = CliRunner().invoke(app, ["dpo", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "rewardlab policy-losses" in shown.output and "--guide-model" in shown.output
