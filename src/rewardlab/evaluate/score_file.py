"""``rewardlab score`` as a library call: a file of (prompt, response) rows in, the rows with their
reward out, written whole or not at all so a crash never leaves half a file that looks finished.

Everything that can be checked before the models load is: the output can be written, no row already
has a field the scores would overwrite, and every row can be written back as JSON. A non-finite
reward (a broken model, or an overflow at low precision) is refused rather than written as ``NaN``,
which is not JSON; the output then keeps whatever it held before.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic
from rewardlab.data.records import DataError
from rewardlab.data.schema import describe_value
from rewardlab.data.scoring import ScoringRow, read_scoring_rows
from rewardlab.destinations import check_file_destination, writing
from rewardlab.evaluate.score_plan import scorer_for

REWARD_FIELD, UNCERTAINTY_FIELD = "reward", "uncertainty"


def score_file(
    model: str | Path,
    input: str | Path,
    output: str | Path,
    *,
    prompt_field: str = "prompt",
    response_field: str = "response",
    precision: str = "auto",
    member: list[str | Path] | None = None,
    aggregation: str | None = None,
    uncertainty_weight: float | None = None,
    direction: str | list[float] | None = None,
    user: str | None = None,
    user_examples: str | Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score each row of ``input`` with ``model`` and write the rows with a ``reward`` field to
    ``output`` (JSONL); returns the rows written.

    An ensemble (``member`` models beside ``model``, or a model trained with an ensemble objective)
    also writes each reward's ``uncertainty``: the variance across members. ``direction`` weighs a
    multi-attribute model's attributes (``"1,0.5"`` as on the command line, or a list). A row that
    already has a ``reward`` (or, for an ensemble, ``uncertainty``) field is refused: rename it first.
    Timestamps (Parquet, datasets) are written as ISO 8601 text; other values JSON cannot hold (bytes)
    are refused before scoring. ``user`` (an id it was trained with) or ``user_examples`` (a file of a new
    user's labelled pairs) says whom a pluralistic model scores for; without them, the population.
    """
    check_file_destination(output)
    rows = read_scoring_rows(input, prompt_field, response_field)
    check_new_field(rows, REWARD_FIELD)
    _check_json_values(rows)
    scorer = scorer_for(
        model,
        member=member,
        aggregation=aggregation,
        uncertainty_weight=uncertainty_weight,
        direction=direction,
        user=user,
        user_examples=user_examples,
        precision=precision,
    )
    if scorer.plan.uncertainty:
        check_new_field(rows, UNCERTAINTY_FIELD)
    rewards, uncertainty = scorer([r.prompt for r in rows], [r.response for r in rows], progress=progress)
    _check_finite(rows, rewards, uncertainty, precision)
    extra = [{UNCERTAINTY_FIELD: u} for u in uncertainty] if uncertainty is not None else [{}] * len(rows)
    scored = [{**r.row, REWARD_FIELD: value, **more} for r, value, more in zip(rows, rewards, extra, strict=True)]
    with writing(output):
        write_text_atomic(output, "".join(_json_line(r) for r in scored))
    return scored


def check_new_field(rows: Sequence[ScoringRow], added: str) -> None:
    """Refuse, before any work, a row that already holds the field ``added``: scoring would overwrite it."""
    for r in rows:
        if added in r.row:
            raise DataError(
                r.location,
                f"already exists and would be overwritten by the {added} (rename or drop the field before scoring)",
                field=added,
            )


def _check_json_values(rows: Sequence[ScoringRow]) -> None:
    """Refuse, before any work, a value the output's JSON cannot hold (bytes, NaN), naming its field."""
    for r in rows:
        for key, value in r.row.items():
            try:
                json.dumps(value, default=_json_default, allow_nan=False)
            except (TypeError, ValueError, RecursionError):
                kind = "binary data" if isinstance(value, bytes | bytearray) else describe_value(value)
                raise DataError(
                    r.location,
                    f"is {kind}, which JSON cannot hold (drop or convert the column before scoring)",
                    field=key,
                ) from None


def _check_finite(
    rows: Sequence[ScoringRow], rewards: Sequence[float], uncertainty: Sequence[float] | None, precision: str
) -> None:
    """Refuse non-finite results: ``NaN`` is not JSON, and a null would pass for a score downstream."""
    spread = uncertainty if uncertainty is not None else [0.0] * len(rows)
    bad = [
        r.location
        for r, value, u in zip(rows, rewards, spread, strict=True)
        if not (math.isfinite(value) and math.isfinite(u))
    ]
    if bad:
        raise ValueError(
            f"the model gave a non-finite reward for {len(bad)} of {len(rows)} rows, the first at {bad[0]}; "
            f"nothing was written (a non-finite reward is not JSON; try --precision fp32 if --precision "
            f"{precision} overflows, or check the model)"
        )


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=_json_default, allow_nan=False) + "\n"


def _json_default(value: object) -> str:
    """Timestamps, dates and times (Parquet and datasets columns) as ISO 8601 text; nothing else."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
