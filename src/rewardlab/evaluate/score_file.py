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
from rewardlab.data.loading import load_preferences
from rewardlab.data.records import DataError
from rewardlab.data.schema import describe_value
from rewardlab.data.scoring import ScoringRow, read_scoring_rows
from rewardlab.destinations import check_file_destination, writing
from rewardlab.models.ensemble import RewardEnsemble
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.users import UserExamples
from rewardlab.rewards.direction import direction_problem, direction_weights

REWARD_FIELD, UNCERTAINTY_FIELD = "reward", "uncertainty"
HEAD_KINDS = {
    "reward": "a single model with one reward per reply",
    "attributes": "a multi-attribute model",
    "ensemble": "an ensemble model",
    "preference": "a preference-embedding model",
}


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
    who = _user(user, user_examples, member)
    check_file_destination(output)
    rows = read_scoring_rows(input, prompt_field, response_field)
    check_new_field(rows, REWARD_FIELD)
    _check_json_values(rows)
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    weights = direction_weights(direction or None)
    options = {
        k: v for k, v in (("aggregation", aggregation), ("uncertainty_weight", uncertainty_weight)) if v is not None
    }
    uncertainty = None
    if member:
        _check_direction(model, "ensemble", 0, weights)
        check_new_field(rows, UNCERTAINTY_FIELD)
        ensemble = RewardEnsemble.from_pretrained([model, *member], **options)
        rewards, uncertainty = ensemble.score_with_uncertainty(
            prompts, responses, precision=precision, progress=progress
        )
    else:
        reward_model = RewardModel.from_pretrained(model)
        head = reward_model.info.head
        if who is not None and reward_model.users is None:
            flag = "--user" if user is not None else "--user-examples"
            raise ValueError(f"{model}: {flag} is for a pluralistic model; this one gives one reward for everyone")
        _check_direction(model, head, reward_model.model.config.num_labels, weights)
        if head != "ensemble":
            _refuse_unused(model, HEAD_KINDS.get(head, f"a model with a {head} head"), options)
        for key, value in options.items():
            setattr(reward_model.info, key, value)
        if reward_model.info.head == "ensemble":
            check_new_field(rows, UNCERTAINTY_FIELD)
            rewards, uncertainty = reward_model.score_with_uncertainty(prompts, responses, precision=precision)
        else:
            rewards = reward_model.score(
                prompts, responses, precision=precision, progress=progress, direction=weights, user=who
            )
    _check_finite(rows, rewards, uncertainty, precision)
    extra = [{UNCERTAINTY_FIELD: u} for u in uncertainty] if uncertainty is not None else [{}] * len(rows)
    scored = [{**r.row, REWARD_FIELD: value, **more} for r, value, more in zip(rows, rewards, extra, strict=True)]
    with writing(output):
        write_text_atomic(output, "".join(_json_line(r) for r in scored))
    return scored


def _user(
    user: str | None, user_examples: str | Path | None, member: Sequence[Any] | None
) -> str | UserExamples | None:
    """Whom to score for: a known user id, a new user's pairs read from ``user_examples``, or None."""
    if user is not None and user_examples is not None:
        raise ValueError("--user and --user-examples both say whom to score for; give one")
    if member and (user is not None or user_examples is not None):
        raise ValueError("--user and --user-examples are for one pluralistic model, not an ensemble of --member")
    if user_examples is not None:
        return UserExamples.from_pairs(load_preferences(user_examples).pairs, str(user_examples))
    return user


def _check_direction(model: str | Path, head: str, outputs: int, weights: Sequence[float] | None) -> None:
    """Refuse a direction the model would ignore, or one that does not fit its attributes."""
    if problem := direction_problem(head, outputs, weights):
        raise ValueError(f"{model}: --direction {problem}")


def _refuse_unused(model: str | Path, what: str, options: dict[str, Any]) -> None:
    """Refuse an ensemble option the model would ignore: the rewards written would not be what was asked for."""
    for key in options:
        flag = "--" + key.replace("_", "-")
        raise ValueError(
            f"{model}: {flag} combines the members of an ensemble, but this is {what}; "
            "drop it, or score an ensemble (--member MODEL, or a model trained with an ensemble objective)"
        )


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
