"""``rewardlab score`` as a library call: a file of (prompt, response) rows in, the rows with their
reward out, written whole or not at all so a crash never leaves half a file that looks finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic
from rewardlab.data.scoring import read_scoring_rows
from rewardlab.models.ensemble import RewardEnsemble
from rewardlab.models.reward_model import RewardModel


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
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score each row of ``input`` with ``model`` and write the rows with a ``reward`` field to
    ``output`` (JSONL); returns the rows written.

    An ensemble (``member`` models beside ``model``, or a model trained with an ensemble objective)
    also writes each reward's ``uncertainty``: the variance across members. ``direction`` weighs a
    multi-attribute model's attributes (``"1,0.5"`` as on the command line, or a list).
    """
    rows = read_scoring_rows(input, prompt_field, response_field)
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    weights = parse_direction(direction) if isinstance(direction, str) and direction else direction or None
    options = {
        k: v for k, v in (("aggregation", aggregation), ("uncertainty_weight", uncertainty_weight)) if v is not None
    }
    uncertainty = None
    if member:
        ensemble = RewardEnsemble.from_pretrained([model, *member], **options)
        rewards, uncertainty = ensemble.score_with_uncertainty(
            prompts, responses, precision=precision, progress=progress
        )
    else:
        reward_model = RewardModel.from_pretrained(model)
        for key, value in options.items():
            setattr(reward_model.info, key, value)
        if reward_model.info.head == "ensemble":
            rewards, uncertainty = reward_model.score_with_uncertainty(prompts, responses, precision=precision)
        else:
            rewards = reward_model.score(prompts, responses, precision=precision, progress=progress, direction=weights)
    extra = [{"uncertainty": u} for u in uncertainty] if uncertainty is not None else [{}] * len(rows)
    scored = [{**r.row, "reward": value, **more} for r, value, more in zip(rows, rewards, extra, strict=True)]
    write_text_atomic(output, "\n".join(json.dumps(r, ensure_ascii=False) for r in scored) + "\n")
    return scored


def parse_direction(text: str) -> list[float]:
    """Attribute weights as typed on the command line: numbers separated by commas."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--direction must be numbers separated by commas, e.g. 1,0.5 (got {text!r})") from None
