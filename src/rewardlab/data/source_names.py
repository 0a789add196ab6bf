"""Which named source a pair came from, when a run trains on several (``runs/sources.py``).

The name is written in front of the pair's location, ``[ultrafeedback] uf.jsonl:12``, so a pair
carries it through every split, batch and report without a field of its own, and an error about
the pair still points at the file and line.
"""

from __future__ import annotations

import dataclasses
import re

from rewardlab.data.records import PreferencePair, Ranking

_TAG = re.compile(r"^\[([^\[\]\s]+)\] ")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")
"""What a source name may hold: letters, digits and ``_ . + -`` (no spaces or brackets)."""


def tag_source(record: PreferencePair | Ranking, name: str) -> PreferencePair | Ranking:
    """``record`` with ``name`` in front of its location and of its group (groups of two sources
    must not meet: the trainer matches rankings to their pairs by group)."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"source name {name!r} may hold only letters, digits and _ . + -")
    location = f"[{name}] {record.source}" if record.source else f"[{name}] "
    group = f"{name}/{record.group}" if record.group is not None else None
    return dataclasses.replace(record, source=location, group=group)


def source_name(record: PreferencePair | Ranking) -> str | None:
    """The source name ``tag_source`` gave ``record``, or None for a record read on its own."""
    match = _TAG.match(record.source or "")
    return match.group(1) if match else None
