"""Commands that list what a run can name: ``objectives``, ``recipes``, ``policy-losses``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Column, Table

from rewardlab.cli.base import app, out


@app.command()
def objectives() -> None:
    """List the registered objectives and their options."""
    from rewardlab.objectives import get_objective, objective_names

    _print_methods(objective_names(), get_objective)


@app.command()
def recipes() -> None:
    """List the packaged recipes of `rewardlab train --recipe`, each with what it trains."""
    from rewardlab.runs.recipes import recipe_description, recipe_names

    width = max(map(len, recipe_names()))
    for name in recipe_names():  # one line each, never wrapped: easy to grep
        out.print(f"[bold]{name:<{width}}[/]  {recipe_description(name)}", soft_wrap=True)


@app.command("policy-losses")
def policy_losses() -> None:
    """List the registered policy losses of `rewardlab dpo --loss` and their options."""
    from rewardlab.policy.registry import get_policy_loss, policy_loss_names

    _print_methods(policy_loss_names(), get_policy_loss)


def _print_methods(names: list[str], get: Callable[[str], Any]) -> None:
    """A registry's methods as a table: name, options with their defaults, the one-line summary."""
    # the name is what users type: shown whole, the other columns wrap
    table = Table(Column("name", min_width=max(map(len, names)), no_wrap=True), "options", "what it is")
    for name in names:
        method = get(name)
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in method.options.items()), method.summary)
    out.print(table)
