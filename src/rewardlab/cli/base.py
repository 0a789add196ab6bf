"""The ``rewardlab`` app and what every command shares: a mistake as one red line, warnings as one
yellow line, the consoles, ``--version``."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

# markdown: a docstring's paragraphs flow to the terminal's width (rich mode keeps their source line breaks)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Learn, measure and use reward models.",
)
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", help="Inspect preference datasets.")
app.add_typer(data_app, name="data")
# soft wrap: lines are left for the terminal to wrap, so paths and reports piped to a file stay whole
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command as its user sees it: a mistake (bad data, config, path) as one red line and exit
    code 2, not a traceback, and the libraries' own progress bars and log lines quieted (rewardlab
    draws its own; theirs would repeat them). Applied when the command runs, so ``--help`` loads
    neither the libraries nor torch."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from rewardlab.tuning import tune_cpu

        tune_cpu()  # a command is rewardlab's own run: its CPU settings, set before torch computes anything
        from transformers.utils import logging as hf_logging

        from rewardlab.data.records import DataError
        from rewardlab.destinations import os_error_message
        from rewardlab.runs.config import ConfigError
        from rewardlab.runs.folder import RunExists

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        warnings.showwarning = _show_warning
        try:
            return command(*args, **kwargs)
        except (DataError, ConfigError, RunExists, FileNotFoundError, ValueError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as e:  # a path that cannot be read or written (read-only, full disk): the path and why
            console.print(f"[bold red]error:[/] {escape(os_error_message(e))}", highlight=False)
            raise typer.Exit(2) from None

    return run


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """A warning (an unfinished model, say) as one yellow line, not Python's file:line form."""
    console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)


def note(message: str) -> None:
    """Notes about the data (rows skipped) as the library reports them, on stderr."""
    console.print(message, markup=False)


def _print_version(value: bool) -> None:
    if value:
        from rewardlab import __version__

        typer.echo(f"rewardlab {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    # no docstring: typer would show it in place of the app's help
    pass


def show(output: Any) -> None:
    """An evaluation's report as Markdown, and the files it was written to."""
    out.print(output.markdown(), markup=False, highlight=False)
    if output.report_files:
        out.print("report: " + ", ".join(map(str, output.report_files)))
