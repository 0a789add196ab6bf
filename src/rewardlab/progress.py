"""One progress style for every long loop: a rich bar on a terminal, log lines elsewhere.

When stderr is not a terminal (nohup, a scheduler, CI), a bar draws nothing until the loop ends, so a
run logged to a file would be silent for its whole length; there, progress is a plain line every
``every`` steps instead: the step, the caller's fields (loss, pairs/s) and the time elapsed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

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
def progress_bar(
    enabled: bool,
    label: str,
    total: int,
    *,
    every: int | None = None,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; with ``enabled`` false nothing is shown. Progress goes to
    ``stream`` (stderr), so that what a command prints (a report, JSON) can be piped or redirected clean.
    Off a terminal, a line every ``every`` steps (default: a tenth of ``total``) and at the end."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    stream = stream if stream is not None else sys.stderr
    if not _is_terminal(stream):
        yield from _log_lines(label, total, every or max(1, total // 10), stream, clock)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(file=stream), transient=False) as bar:
        task = bar.add_task(label, total=total, status="")

        def advance(n: int = 1, **fields: str) -> None:
            bar.update(task, advance=n, status=" ".join(f"{k}={v}" for k, v in fields.items()))

        yield advance


def _log_lines(
    label: str, total: int, every: int, stream: TextIO, clock: Callable[[], float]
) -> Iterator[Callable[..., None]]:
    started = clock()
    done = 0
    status: dict[str, str] = {}

    def advance(n: int = 1, **fields: str) -> None:
        nonlocal done
        status.update(fields)
        before, done = done, done + n
        if done // every > before // every or (done >= total > before):
            print(progress_line(label, done, total, status, clock() - started), file=stream, flush=True)

    yield advance


def progress_line(label: str, done: int, total: int, fields: dict[str, str], elapsed: float) -> str:
    """``training: 20/150 loss=0.6931 pairs/s=41.2 elapsed 0:01:05``."""
    shown = "".join(f" {k}={v}" for k, v in fields.items())
    minutes, seconds = divmod(int(elapsed), 60)
    return f"{label}: {done}/{total}{shown} elapsed {minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
