"""Reasoning chains split into steps, each step labelled: the records of a process reward model (PRM).

A row is ``{"prompt": ..., "steps": ["...", ...], "labels": [1, 1, 0]}``. A step's label is the
probability that the chain is still right after that step: 1 or 0 for a verdict (PRM800K, Lightman et
al. 2023, "Let's Verify Step by Step": the steps after the first wrong one are wrong too), or the fraction
of Monte-Carlo continuations from that step that reach the right answer (Math-Shepherd, Wang et al.
2024; MedS³). Labels are optional, so unlabelled chains can be scored; ``answer`` is the reference
final answer when it is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_jsonl
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import describe_value, parse_prompt, read_text


@dataclass(frozen=True, slots=True)
class StepChain:
    """One reasoning chain: the prompt, its steps in order, and optionally a label per step."""

    prompt: Prompt
    steps: tuple[str, ...]
    labels: tuple[float, ...] | None = None
    answer: str | None = None
    id: str | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a chain needs at least one step")
        if self.labels is not None and len(self.labels) != len(self.steps):
            raise ValueError(f"{len(self.labels)} labels for {len(self.steps)} steps")

    def prefix(self, count: int) -> str:
        """The reply a PRM reads to score step ``count`` (1-based): the first ``count`` steps, one a line."""
        if not 1 <= count <= len(self.steps):
            raise ValueError(f"step {count} of a {len(self.steps)}-step chain")
        return "\n".join(self.steps[:count])


def first_wrong_step(labels: Sequence[float], threshold: float = 0.5) -> int | None:
    """The 0-based index of the first step labelled below ``threshold`` (wrong), or None if every step is right."""
    return next((index for index, label in enumerate(labels) if label < threshold), None)


def parse_chain(row: dict[str, Any], location: str) -> StepChain:
    """A chain from one row, every field checked; errors name the row's location and the field."""
    if "prompt" not in row:
        raise DataError(location, "is missing (every chain needs the question it answers)", "prompt")
    prompt = parse_prompt(row["prompt"], location, "prompt")
    steps = row.get("steps")
    if not isinstance(steps, list) or not steps:
        seen = "missing" if steps is None else f"{describe_value(steps)}"
        raise DataError(location, f"is {seen} (expected a non-empty list of step texts)", "steps")
    texts = tuple(read_text(step, location, f"steps[{index}]") for index, step in enumerate(steps))
    labels = row.get("labels")
    if labels is not None:
        labels = _labels(labels, len(texts), location)
    answer = row.get("answer")
    if answer is not None:
        answer = str(answer) if isinstance(answer, int | float) and not isinstance(answer, bool) else answer
        answer = read_text(answer, location, "answer")
    chain_id = row.get("id")
    return StepChain(prompt, texts, labels, answer, None if chain_id is None else str(chain_id), location)


def _labels(value: Any, count: int, location: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise DataError(location, f"is {describe_value(value)} (expected a list with one label per step)", "labels")
    if len(value) != count:
        raise DataError(location, f"has {len(value)} labels for {count} steps (expected one per step)", "labels")
    labels = []
    for index, label in enumerate(value):
        number = float(label) if isinstance(label, int | float) else math.nan  # true/false are ints: 1 and 0
        if not 0.0 <= number <= 1.0:
            raise DataError(
                location,
                f"is {describe_value(label)} (expected 0 or 1, or a probability in [0, 1])",
                f"labels[{index}]",
            )
        labels.append(number)
    return tuple(labels)


def read_chains(path: str | Path, limit: int | None = None) -> list[StepChain]:
    """Every chain of a JSONL, JSON, CSV or Parquet file (the first ``limit``); a bad row raises, named."""
    chains = []
    for location, row in iter_rows(path):
        if limit is not None and len(chains) >= limit:
            break
        chains.append(parse_chain(row, location))
    return chains


def chain_row(chain: StepChain) -> dict[str, Any]:
    """The JSON row ``parse_chain`` reads back into ``chain`` (fields that are None are left out)."""
    row = {
        "id": chain.id,
        "prompt": chain.prompt,
        "steps": list(chain.steps),
        "labels": chain.labels,
        "answer": chain.answer,
    }
    return {key: list(value) if isinstance(value, tuple) else value for key, value in row.items() if value is not None}


def write_chains(chains: Sequence[StepChain], path: str | Path) -> None:
    """Write ``chains`` as JSON lines, atomically (a failed write leaves what was there)."""
    write_jsonl(path, (chain_row(c) for c in chains))


def read_questions(path: str | Path, limit: int | None = None) -> list[tuple[Prompt, str | None]]:
    """(prompt, answer or None) of every row (the first ``limit``): the questions a policy is to solve.
    Only ``prompt`` is needed; a chains file serves too (its steps are not read)."""
    questions = []
    for location, row in iter_rows(path):
        if limit is not None and len(questions) >= limit:
            break
        if "prompt" not in row:
            raise DataError(location, "is missing (every row needs the question to solve)", "prompt")
        answer = row.get("answer")
        if answer is not None and (isinstance(answer, bool) or not isinstance(answer, str | int | float)):
            raise DataError(location, f"is {describe_value(answer)} (expected a number or text)", "answer")
        questions.append((parse_prompt(row["prompt"], location, "prompt"), None if answer is None else str(answer)))
    return questions
