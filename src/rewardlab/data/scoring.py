"""Rows to score: a prompt (text or conversation) and one response, validated with their location."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import parse_prompt


@dataclass(frozen=True)
class ScoringRow:
    prompt: Prompt
    response: str
    row: dict[str, Any]


def read_scoring_rows(
    path: str | Path, prompt_field: str = "prompt", response_field: str = "response"
) -> list[ScoringRow]:
    rows = []
    for location, row in iter_rows(path):
        if prompt_field not in row:
            raise DataError(location, "is missing", field=prompt_field)
        response = row.get(response_field)
        if not isinstance(response, str) or not response.strip():
            problem = (
                "is missing"
                if response_field not in row
                else ("is empty" if isinstance(response, str) else f"must be text, not {type(response).__name__}")
            )
            raise DataError(location, f"{problem} (expected the response to score)", field=response_field)
        rows.append(ScoringRow(parse_prompt(row[prompt_field], location, prompt_field), response, row))
    return rows
