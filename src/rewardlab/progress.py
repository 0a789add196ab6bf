"""One progress bar style for every long loop (rich), silent when not wanted."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(enabled: bool, label: str, total: int) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; with ``enabled`` false nothing is drawn. The bar goes to
    stderr, so that what a command prints (a report, JSON) can be piped or redirected clean."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total, status="")

        def advance(n: int = 1, **fields: str) -> None:
            bar.update(task, advance=n, status=" ".join(f"{k}={v}" for k, v in fields.items()))

        yield advance
