"""A run's metrics: one JSON line per record in ``metrics.jsonl``, mirrored to experiment trackers."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic


class MetricLogger:
    """Append-only JSONL log of metrics; a resumed run first drops the lines it will log again, and a
    fresh one starts the file empty, so each step is logged once.

    ``trackers`` are started accelerate trackers (``runs/trackers.py``); each value goes to them as
    ``split/name`` at its step, and :meth:`close` finishes them."""

    def __init__(self, path: Path, *, resume_step: int = 0, trackers: Sequence[Any] = ()) -> None:
        self.path = path
        self.trackers = list(trackers)
        self.truncate(path, resume_step)

    @staticmethod
    def truncate(path: Path, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run logs those steps again) and a line a kill
        cut short."""
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            write_text_atomic(path, "".join(line for line in lines if _logged_step(line) <= step))

    def log(self, step: int, values: dict[str, float], split: str | None = None) -> None:
        record = {"step": step, **({"split": split} if split else {}), **values}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for tracker in self.trackers:
            tracker.log({f"{split}/{k}" if split else k: v for k, v in values.items()}, step=step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _logged_step(line: str) -> float:
    """The step a line was logged at; infinity for a line that is not a whole record."""
    try:
        record = json.loads(line)
    except ValueError:
        return math.inf
    step = record.get("step") if isinstance(record, dict) and line.endswith("\n") else None
    return step if isinstance(step, int) else math.inf
