"""What an annotator's answer is, by project kind, and how a submitted form becomes one.

Payloads (stored as JSON in the ``labels`` table):

- pairwise: ``{"choice": "a" | "b" | "tie", "strength": 1 | 2 | 3}`` (3 much better, 2 better, 1 slightly
  better; a tie has no strength);
- ranking: ``{"order": [i0, i1, ...]}`` (reply indexes, best first);
- rating: ``{"ratings": [r0, r1, ...]}`` (1..7 per reply);
- attributes: ``{"ratings": {"helpfulness": [r0, r1, ...], ...}}`` (1..7 per reply for each attribute).

Form fields the annotator page posts (:func:`parse_form`): ``action=skip`` skips (the payload is empty);
``reason`` is free text for any kind. Pairwise: ``preference`` on the seven-point scale ``a3 a2 a1 tie b1
b2 b3`` (side and strength in one field), or ``choice`` and ``strength``. Ranking: ``order`` as comma
separated indexes best first, or ``rank_<i>`` (1 = best) for each reply i. Rating: ``rating_<i>``.
Attributes: ``rating_<attribute>_<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_REASON = 2000
"""Characters of free-text reason kept; a longer one is refused (the page says so)."""
RATING_RANGE = (1, 7)
STRENGTHS = (1, 2, 3)
SCALE = {"a3": ("a", 3), "a2": ("a", 2), "a1": ("a", 1), "tie": ("tie", None)}
SCALE |= {"b1": ("b", 1), "b2": ("b", 2), "b3": ("b", 3)}
"""The seven-point pairwise scale: a much better ... tie ... b much better."""


@dataclass(frozen=True)
class LabelPayload:
    """One answer: ``payload`` as above (empty when ``skipped``) and the free-text ``reason``."""

    payload: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False
    reason: str = ""


def _whole(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f'field "{name}": {value!r:.40} is not a whole number from {low} to {high}') from None
    if not low <= number <= high:
        raise ValueError(f'field "{name}": {number} is not between {low} and {high}')
    return number


def _required(form: Mapping[str, Any], name: str) -> Any:
    value = form.get(name)
    if value is None or str(value).strip() == "":
        raise ValueError(f'field "{name}" is missing')
    return value


def _pairwise(form: Mapping[str, Any]) -> dict[str, Any]:
    if form.get("preference"):
        value = str(form["preference"]).strip()
        if value not in SCALE:
            raise ValueError(f'field "preference": {value!r:.40} is not one of {", ".join(SCALE)}')
        choice, strength = SCALE[value]
    else:
        choice = str(_required(form, "choice")).strip()
        if choice not in ("a", "b", "tie"):
            raise ValueError(f'field "choice": {choice!r:.40} is not a, b or tie')
        strength = None if choice == "tie" else _whole(_required(form, "strength"), "strength", 1, 3)
    return {"choice": choice} if choice == "tie" else {"choice": choice, "strength": strength}


def _ranking(form: Mapping[str, Any], n_replies: int) -> dict[str, Any]:
    if form.get("order"):
        parts = [p for p in str(form["order"]).replace(" ", "").split(",") if p]
        order = [_whole(p, "order", 0, n_replies - 1) for p in parts]
    else:
        ranks = [_whole(_required(form, f"rank_{i}"), f"rank_{i}", 1, n_replies) for i in range(n_replies)]
        if sorted(ranks) != list(range(1, n_replies + 1)):
            raise ValueError(f'field "rank_0": ranks {ranks} must use each of 1..{n_replies} once')
        order = sorted(range(n_replies), key=lambda i: ranks[i])
    return validate_payload("ranking", {"order": order}, n_replies)


def _ratings(form: Mapping[str, Any], prefix: str, n_replies: int) -> list[int]:
    low, high = RATING_RANGE
    return [_whole(_required(form, f"{prefix}{i}"), f"{prefix}{i}", low, high) for i in range(n_replies)]


def parse_form(kind: str, form: Mapping[str, Any], n_replies: int, attributes: Sequence[str] = ()) -> LabelPayload:
    """The answer a submitted form states; ``ValueError`` naming the first bad field."""
    reason = str(form.get("reason") or "").strip()
    if len(reason) > MAX_REASON:
        raise ValueError(f'field "reason": {len(reason)} characters; at most {MAX_REASON}')
    if str(form.get("action") or "").strip() == "skip":
        return LabelPayload({}, True, reason)
    if kind == "pairwise":
        payload = _pairwise(form)
    elif kind == "ranking":
        payload = _ranking(form, n_replies)
    elif kind == "rating":
        payload = {"ratings": _ratings(form, "rating_", n_replies)}
    elif kind == "attributes":
        payload = {"ratings": {a: _ratings(form, f"rating_{a}_", n_replies) for a in attributes}}
    else:
        raise ValueError(f"kind: {kind!r} is not pairwise, ranking, rating or attributes")
    return LabelPayload(payload, False, reason)


def validate_payload(
    kind: str, payload: Mapping[str, Any], n_replies: int, attributes: Sequence[str] = ()
) -> dict[str, Any]:
    """Check a stored or imported payload against its kind; returns it as a plain dict, ``ValueError`` naming
    the field otherwise."""
    low, high = RATING_RANGE
    payload = dict(payload)
    if kind == "pairwise":
        choice = payload.get("choice")
        if choice not in ("a", "b", "tie"):
            raise ValueError(f'field "choice": {choice!r:.40} is not a, b or tie')
        if choice != "tie" and payload.get("strength") not in STRENGTHS:
            raise ValueError(f'field "strength": {payload.get("strength")!r:.40} is not 1, 2 or 3')
    elif kind == "ranking":
        order = payload.get("order")
        if not isinstance(order, list) or sorted(order) != list(range(n_replies)):
            raise ValueError(f'field "order": {order!r:.60} must list each reply index 0..{n_replies - 1} once')
    elif kind == "rating":
        ratings = payload.get("ratings")
        if not isinstance(ratings, list) or len(ratings) != n_replies:
            raise ValueError(f'field "ratings": {ratings!r:.60} must hold {n_replies} ratings')
        for i, r in enumerate(ratings):
            _whole(r, f"ratings[{i}]", low, high)
    elif kind == "attributes":
        ratings = payload.get("ratings")
        if not isinstance(ratings, dict) or sorted(ratings) != sorted(attributes):
            raise ValueError(f'field "ratings": must rate exactly the attributes {", ".join(attributes)}')
        for name, values in ratings.items():
            if not isinstance(values, list) or len(values) != n_replies:
                raise ValueError(f'field "ratings.{name}": must hold {n_replies} ratings')
            for i, r in enumerate(values):
                _whole(r, f"ratings.{name}[{i}]", low, high)
    else:
        raise ValueError(f"kind: {kind!r} is not pairwise, ranking, rating or attributes")
    return payload
