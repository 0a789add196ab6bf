"""Rows to score: a prompt (text or conversation) and one response, validated with their location."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import describe_value, parse_prompt


@dataclass(frozen=True)
class ScoringRow:
    prompt: Prompt
    response: str
    row: dict[str, Any]
    location: str = ""
    """Where the row is in its file (``file:line``), so a later problem with it can point back."""


def read_scoring_rows(
    path: str | Path, prompt_field: str = "prompt", response_field: str = "response"
) -> list[ScoringRow]:
    """Every row's prompt and response. A blank response is scored like any other, as training, ``eval``
    and the server do (saying nothing can be the best reply); a missing or non-text one is an error."""
    rows = []
    for location, row in iter_rows(path):
        if prompt_field not in row:
            raise DataError(location, "is missing", field=prompt_field)
        if response_field not in row:
            raise DataError(location, "is missing (expected the response to score)", field=response_field)
        response = row[response_field]
        if not isinstance(response, str):
            raise DataError(
                location,
                f"is {describe_value(response)} (expected the response to score, as text)",
                field=response_field,
            )
        rows.append(ScoringRow(parse_prompt(row[prompt_field], location, prompt_field), response, row, location))
    return rows
