"""The pairs an evaluation reads: a whole file, or one split of it as a training run splits it."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rewardlab.data.records import PreferencePair
from rewardlab.runs.data import SPLIT_NAMES, SplitDataConfig, load_split

Log = Callable[[str], None]
"""Where notes about the data (rows skipped) go as they happen; the CLI prints them to stderr."""


def to_stderr(message: str) -> None:
    """The default ``Log``: a library user sees skipped rows too, never silently dropped."""
    print(message, file=sys.stderr)


def load_pairs(
    data: str = "default",
    *,
    columns: str | None = None,
    skip_bad_rows: bool = False,
    split: str = "all",
    log: Log | None = None,
) -> list[PreferencePair]:
    """The pairs of ``data`` ('default': the embedded data), or of one split of them: with a run's
    default split settings, ``split="test"`` holds the pairs a model trained on ``data`` never saw."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"--split must be all, train, validation or test (got {split!r})")
    loaded = load_split(SplitDataConfig(path=data, columns=columns, skip_bad_rows=skip_bad_rows), log or to_stderr)
    return loaded.part(split)
