"""Agreement between annotators on the items two or more of them labelled.

Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"; computed by the
``krippendorff`` package) is ``α = 1 - D_o / D_e``: the disagreement observed within items over the
disagreement expected if the same values were paired at random. It handles any number of annotators,
missing labels and the level of the scale, which Cohen's kappa (two fixed raters, nominal) does not.
Each kind of label becomes units with one value per annotator:

- pairwise: one unit per item, on the 7-level scale ``+3 .. -3`` (``+s`` when reply a is better with
  strength ``s``, ``-s`` when b is, ``0`` for a tie), ordinal;
- ranking: one unit per pair of replies ``(i, j)``, valued ``pos(j) - pos(i)`` (positive when ``i`` is
  ranked above ``j``, larger the further apart), ordinal;
- rating: one unit per reply, the 1..7 rating, interval;
- attributes: one unit per (attribute, reply), interval.

Beside alpha, the raw share of annotator pairs that chose the same side (a, b or tie) for each pair of
replies: for ratings the side is the sign of the rating difference.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

PAIRWISE_SCALE = tuple(range(-3, 4))
"""The pairwise values, b much better (-3) .. tie (0) .. a much better (+3)."""

LEVELS = {"pairwise": "ordinal", "ranking": "ordinal", "rating": "interval", "attributes": "interval"}


class LabelLike(Protocol):
    """What agreement reads from a stored label (``collect.store.StoredLabel`` has these fields)."""

    item_id: int
    annotator: str
    payload: dict
    skipped: bool


@dataclass(frozen=True)
class AgreementOutput:
    """``alpha`` is None when it is undefined (fewer than 2 overlapping items' values, or one value only)."""

    kind: str
    level: str
    alpha: float | None
    percent_agreement: float | None
    items: int
    annotators: int
    units: int
    annotator_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def krippendorff_alpha(
    units: Mapping[Hashable, Mapping[str, float]], level: str, value_domain: Sequence[float] | None = None
) -> float | None:
    """Alpha over ``units`` (unit → {annotator: value}); None where undefined rather than NaN or an error.

    ``value_domain`` fixes the ordinal scale (its unused levels still count in ordinal distances).
    """
    import krippendorff

    annotators = sorted({name for values in units.values() for name in values})
    keys = [key for key, values in units.items() if len(values) >= 2]
    if len(annotators) < 2 or not keys:
        return None
    matrix = np.full((len(annotators), len(keys)), np.nan)
    row = {name: i for i, name in enumerate(annotators)}
    for j, key in enumerate(keys):
        for name, value in units[key].items():
            matrix[row[name], j] = value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(
                krippendorff.alpha(reliability_data=matrix, value_domain=value_domain, level_of_measurement=level)
            )
    except ValueError:  # one value only: "There has to be more than one value in the domain."
        return None
    return None if math.isnan(value) else value


def pairwise_value(payload: Mapping[str, Any]) -> int:
    """``{"choice": "a", "strength": 2}`` → +2, ``"b"`` with 3 → -3, a tie → 0."""
    choice = payload.get("choice")
    if choice == "tie":
        return 0
    strength = int(payload.get("strength", 1))
    if choice == "a":
        return strength
    if choice == "b":
        return -strength
    raise ValueError(f'pairwise label: field "choice" must be "a", "b" or "tie", got {choice!r}')


def _label_units(kind: str, payload: Mapping[str, Any]) -> dict[Hashable, float]:
    """One label's values, keyed by unit within its item."""
    if kind == "pairwise":
        return {(): pairwise_value(payload)}
    if kind == "ranking":
        position = {reply: pos for pos, reply in enumerate(payload["order"])}
        return {(i, j): position[j] - position[i] for i, j in itertools.combinations(sorted(position), 2)}
    if kind == "rating":
        return {(i,): float(r) for i, r in enumerate(payload["ratings"])}
    if kind == "attributes":
        return {(name, i): float(r) for name, ratings in payload["ratings"].items() for i, r in enumerate(ratings)}
    raise ValueError(f"kind must be one of {', '.join(LEVELS)}, got {kind!r}")


def _sides(kind: str, payload: Mapping[str, Any]) -> dict[Hashable, int]:
    """The side chosen (+1 first reply, -1 second, 0 tie) for each pair of replies the label orders."""
    if kind == "pairwise":
        return {(0, 1): int(np.sign(pairwise_value(payload)))}
    if kind == "ranking":
        position = {reply: pos for pos, reply in enumerate(payload["order"])}
        return {(i, j): int(np.sign(position[j] - position[i])) for i, j in itertools.combinations(sorted(position), 2)}
    groups = payload["ratings"].items() if kind == "attributes" else [("", payload["ratings"])]
    return {
        (name, i, j): int(np.sign(ratings[i] - ratings[j]))
        for name, ratings in groups
        for i, j in itertools.combinations(range(len(ratings)), 2)
    }


def infer_kind(labels: Sequence[LabelLike]) -> str | None:
    """The project kind from the first answered label's payload (None when nothing is answered yet)."""
    for label in labels:
        if label.skipped or not label.payload:
            continue
        if "choice" in label.payload:
            return "pairwise"
        if "order" in label.payload:
            return "ranking"
        ratings = label.payload.get("ratings")
        return "attributes" if isinstance(ratings, dict) else "rating"
    return None


def agreement(labels: Sequence[LabelLike], kind: str) -> AgreementOutput:
    """Alpha and percent agreement over items answered (not skipped) by two or more annotators."""
    if kind not in LEVELS:
        raise ValueError(f"kind must be one of {', '.join(LEVELS)}, got {kind!r}")
    by_item: dict[int, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for label in labels:
        if not label.skipped and label.payload:
            by_item[label.item_id][label.annotator] = label.payload
    overlap = {item: answers for item, answers in by_item.items() if len(answers) >= 2}
    units: dict[Hashable, dict[str, float]] = defaultdict(dict)
    agree = pairs = 0
    for item, answers in overlap.items():
        sides = {}
        for name, payload in answers.items():
            for unit, value in _label_units(kind, payload).items():
                units[(item, unit)][name] = value
            sides[name] = _sides(kind, payload)
        for first, second in itertools.combinations(sorted(sides), 2):
            for pair in sides[first].keys() & sides[second].keys():
                pairs += 1
                agree += sides[first][pair] == sides[second][pair]
    domain: tuple[int, ...] | None = PAIRWISE_SCALE if kind == "pairwise" else None
    if kind == "ranking":  # pos(j) - pos(i) lies in -(k-1) .. k-1 for k replies
        widest = max((len(p["order"]) - 1 for answers in overlap.values() for p in answers.values()), default=1)
        domain = tuple(range(-widest, widest + 1))
    return AgreementOutput(
        kind=kind,
        level=LEVELS[kind],
        alpha=krippendorff_alpha(units, LEVELS[kind], domain),
        percent_agreement=agree / pairs if pairs else None,
        items=len(overlap),
        annotators=len({name for answers in overlap.values() for name in answers}),
        units=len(units),
        annotator_pairs=pairs,
    )
