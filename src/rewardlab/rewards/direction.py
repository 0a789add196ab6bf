"""A preference direction checked against the model it is meant for, before any scoring.

``combine_attributes`` would refuse a bad direction only once the replies are scored (after
sampling them, or inside a server's batch, where one client's mistake fails everyone's batch);
a direction given to a model without attributes would be silently ignored. Both are refused here,
where the direction is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def direction_weights(direction: str | Sequence[float] | None) -> list[float] | None:
    """Attribute weights from ``"1,0.5"`` (as typed on the command line) or a list; None stays None."""
    if direction is None:
        return None
    if isinstance(direction, str):
        try:
            return [float(x) for x in direction.split(",")]
        except ValueError:
            raise ValueError(f"direction must be numbers separated by commas, e.g. 1,0.5 (got {direction!r})") from None
    return [float(x) for x in direction]


def direction_problem(head: str, attributes: int, direction: Sequence[float] | None) -> str | None:
    """Why ``direction`` cannot weigh the outputs of a model with this ``head`` and output count, or None."""
    if direction is None:
        return None
    if head != "attributes":
        return (
            f"weighs the attributes of a multi-attribute model (head 'attributes'), but this model's head is "
            f"{head!r}; drop the direction"
        )
    if len(direction) != attributes:
        return f"needs one weight per attribute ({attributes}), got {len(direction)}"
    if not all(math.isfinite(w) for w in direction) or not any(direction):
        return f"must be a finite, non-zero vector (got {list(direction)})"
    return None


def check_direction(head: str, attributes: int, direction: str | Sequence[float] | None) -> list[float] | None:
    """The direction as weights, or ``ValueError("direction ...")`` naming what is wrong with it."""
    weights = direction_weights(direction)
    if problem := direction_problem(head, attributes, weights):
        raise ValueError(f"direction {problem}")
    return weights


def saved_head(model_dir: str | Path) -> tuple[str, int]:
    """(head, number of outputs) of a saved reward model, read from its config without loading weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    saved = getattr(config, "rewardlab", None) or {}
    return saved.get("head", "reward"), int(config.num_labels)
