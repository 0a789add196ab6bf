"""The detection file: one text per line, who wrote it, and the prompt it answers.

``{"prompt": "...", "text": "...", "source": "human" | "lm" | "mixed"}``: ``human`` is written by a
person, ``lm`` by the aligned LM, ``mixed`` is a human text partly rewritten by the LM. Texts of one
prompt belong together (tuning pairs them, a split keeps them on one side).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from rewardlab.atomic import write_jsonl
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError

SOURCES = ("human", "lm", "mixed")
"""Who wrote a text, from least to most LM-written: the order tuning ranks them in (reversed)."""


@dataclass(frozen=True)
class DetectionRecord:
    prompt: str
    text: str
    source: str
    location: str | None = None
    """``file:line`` it was read from, for later errors; not written."""


def record_from_row(row: dict, location: str) -> DetectionRecord:
    """A record from one parsed row, or a ``DataError`` naming the row and the field at fault."""
    for name in ("prompt", "text", "source"):
        value = row.get(name)
        if value is None:
            raise DataError(location, "is missing (expected a string)", name)
        if not isinstance(value, str):
            raise DataError(location, f"is {json.dumps(value)[:40]} (expected a string)", name)
    if not row["text"].strip():
        raise DataError(location, "is empty (expected non-empty text)", "text")
    if row["source"] not in SOURCES:
        raise DataError(location, f"is {row['source']!r} (expected one of {', '.join(SOURCES)})", "source")
    return DetectionRecord(row["prompt"], row["text"], row["source"], location)


def read_detection(path: str | Path) -> list[DetectionRecord]:
    """Every record of a detection JSONL file; the first bad row raises ``DataError`` (file:line: field)."""
    return [record_from_row(row, location) for location, row in iter_rows(path)]


def write_detection(path: str | Path, records: Iterable[DetectionRecord]) -> Path:
    """Write ``records`` as a detection JSONL file, atomically (a reader never sees half a file)."""
    rows = [{k: v for k, v in asdict(r).items() if k != "location"} for r in records]
    return write_jsonl(path, rows)


def by_prompt(records: Iterable[DetectionRecord]) -> dict[str, dict[str, list[str]]]:
    """prompt → source → texts, prompts in first-seen order."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for record in records:
        grouped.setdefault(record.prompt, {s: [] for s in SOURCES})[record.source].append(record.text)
    return grouped
