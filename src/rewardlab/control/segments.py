"""Preferences between two segments of behaviour: the control counterpart of a preference pair.

One JSON line a judgement::

    {"a": {"observations": [...], "actions": [...]}, "b": {...}, "preferred": "a" | "b" | "equal",
     "task": "optional name", "factors": {"optional": ...}}

A segment of ``T`` steps has ``T + 1`` observations (the state before each action and the one after the
last) and ``T`` actions. In a tabular environment an observation is a state index and an action an action
index; in a Gymnasium environment an observation is a list of numbers and an action an integer or a list of
numbers. ``task`` names the environment the segments come from (cross-task transfer needs it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_jsonl
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError

PREFERRED = ("a", "b", "equal")
"""``preferred``'s values; ``label`` turns them into the probability that ``a`` is preferred."""


@dataclass(frozen=True)
class Segment:
    observations: tuple[Any, ...]
    actions: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class SegmentPreference:
    a: Segment
    b: Segment
    preferred: str
    task: str | None = None
    location: str | None = None
    """``file:line`` it was read from, for later errors; not written."""

    @property
    def label(self) -> float:
        """P(a ≻ b) as the judgement states it: 1, 0, or 1/2 for ``equal``."""
        return {"a": 1.0, "b": 0.0, "equal": 0.5}[self.preferred]


def _segment(value: Any, location: str, name: str) -> Segment:
    if not isinstance(value, dict):
        raise DataError(
            location, f"is {json.dumps(value)[:40]} (expected an object with observations and actions)", name
        )
    for key in ("observations", "actions"):
        if not isinstance(value.get(key), list):
            raise DataError(location, "is missing or not a list", f"{name}.{key}")
    observations, actions = value["observations"], value["actions"]
    if not actions:
        raise DataError(location, "is empty (a segment needs at least one step)", f"{name}.actions")
    if len(observations) != len(actions) + 1:
        raise DataError(
            location,
            f"has {len(observations)} entries for {len(actions)} actions (expected one more observation than actions)",
            f"{name}.observations",
        )
    return Segment(tuple(_freeze(o) for o in observations), tuple(_freeze(a) for a in actions))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def preference_from_row(row: dict, location: str) -> SegmentPreference:
    """A judgement from one parsed row, or a ``DataError`` naming the row and the field at fault."""
    a, b = _segment(row.get("a"), location, "a"), _segment(row.get("b"), location, "b")
    preferred = row.get("preferred")
    if preferred not in PREFERRED:
        raise DataError(
            location, f"is {json.dumps(preferred)[:40]} (expected one of {', '.join(PREFERRED)})", "preferred"
        )
    task = row.get("task")
    if task is not None and not isinstance(task, str):
        raise DataError(location, f"is {json.dumps(task)[:40]} (expected a string)", "task")
    return SegmentPreference(a, b, preferred, task, location)


def read_preferences(path: str | Path) -> list[SegmentPreference]:
    """Every judgement in a file; an empty file or the first bad row raises a ``DataError`` naming line and field."""
    return [preference_from_row(row, location) for location, row in iter_rows(path)]


def _thaw(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def preference_row(record: SegmentPreference) -> dict:
    row: dict[str, Any] = {
        side: {"observations": [_thaw(o) for o in seg.observations], "actions": [_thaw(a) for a in seg.actions]}
        for side, seg in (("a", record.a), ("b", record.b))
    }
    row["preferred"] = record.preferred
    if record.task is not None:
        row["task"] = record.task
    return row


def write_preferences(path: str | Path, records: Iterable[SegmentPreference]) -> Path:
    """Write judgements as JSON lines, atomically."""
    return write_jsonl(path, (preference_row(r) for r in records))
