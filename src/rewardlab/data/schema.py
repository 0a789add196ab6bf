"""Turn one raw row into a validated ``PreferencePair``, whatever the user's field names.

Datasets name their fields differently (``question``/``response_j``/``response_k``,
``metadata.score``...), so a ``ColumnMap`` says where each canonical field lives. Every problem is
reported as a ``DataError`` naming the row's location and the user's own field name, so the user
can find and fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from rewardlab.data.context import with_context
from rewardlab.data.prompts import ROLES, SplitError, split_shared_messages, split_shared_prefix
from rewardlab.data.records import DataError, Message, PreferencePair, Prompt

MISSING = object()
"""Stands for a field a row does not have (``None`` is a JSON null the row does have)."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where each canonical field is found in a row; a dotted name such as ``metadata.score`` reaches
    into nested objects.

    Only ``chosen`` and ``rejected`` must be present. Without a prompt field (under its default
    name) the prompt is taken from the start ``chosen`` and ``rejected`` share.
    """

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    rejected_prompt: str = "rejected_prompt"
    """The rejected side's own prompt, when the two sides were judged under different prompts."""
    margin: str = "margin"
    weight: str = "weight"
    tie: str = "tie"
    id: str = "id"
    subset: str = "subset"
    annotator: str = "annotator"
    annotator_group: str = "annotator_group"
    """The group the annotator belongs to, for accuracy by group (``rewardlab eval --by group``)."""
    group: str = "group"
    """Pairs sharing a group are split together (e.g. several pairs drawn for one prompt)."""
    strength: str = "strength"
    consistency: str = "consistency"
    """How far two judges agree on the pair's ranking, in [0, 1] (CREAM's per-pair weight)."""
    chosen_rating: str = "chosen_rating"
    rejected_rating: str = "rejected_rating"
    # the context the preference was stated in, put before the prompt (data/context.py)
    context: str = "context"
    # graded pairs (see forms.py): two replies and a five-level label
    response_a: str = "response_a"
    response_b: str = "response_b"
    preference: str = "preference"
    # k-wise records: the replies (one list field, or several fields joined by "|") and how they were judged
    responses: str = "responses"
    ranking: str = "ranking"
    judgements: str = "judgements"
    # tree records: replies that share prefixes, and comparisons between branches
    nodes: str = "nodes"
    comparisons: str = "comparisons"
    # reference answers to a prompt, for reference-based rewards (BLEU, ROUGE-L); not part of a pair
    reference: str = "reference"

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """Read ``"prompt=question,chosen=response_j"`` (the CLI form); unnamed fields keep defaults."""
        known = [f.name for f in fields(cls)]
        given: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            canonical, equals, source = (s.strip() for s in item.partition("="))
            if not equals or not canonical or not source:
                raise ValueError(f'column mapping "{item}" is not of the form name=field (e.g. prompt=question)')
            if canonical not in known:
                raise ValueError(f'unknown column "{canonical}" in "{item}" (known: {", ".join(known)})')
            if canonical in given:
                raise ValueError(f'column "{canonical}" is mapped twice')
            given[canonical] = source
        return replace(cls(), **given)


_DEFAULT = ColumnMap()


class NoPreference(DataError):
    """A row that labels one of two identical replies as better: it carries no preference to learn or
    measure, so loading skips it and counts it, even without ``skip_bad_rows``. Public data has such
    rows (UltraFeedback binarized, Tulu 1's human evaluation); they are not mistakes a user can fix."""


def parse_pair(row: dict[str, Any], location: str, columns: ColumnMap) -> PreferencePair:
    """Validate one row and build its ``PreferencePair``; raise ``DataError`` on the first problem.

    Accepted forms: explicit text prompt with text replies; no prompt field, the prompt being the
    shared start of two full transcripts (HH-RLHF); and conversations, with replies as lists of
    ``{role, content}`` messages, either full conversations or the reply alone after a prompt given
    as a message list or as text.
    """
    prompt, chosen, rejected = _prompt_and_replies(row, location, columns)
    rejected_prompt = _rejected_prompt(row, location, columns, prompt)
    tie = _tie(row, location, columns.tie)
    if chosen == rejected and not tie and rejected_prompt is None:
        raise NoPreference(
            location,
            f'is identical to "{columns.chosen}" (a preference needs two different replies; '
            f'set "{columns.tie}" to true if they were judged equally good)',
            field=columns.rejected,
        )
    weight = _number(row, location, columns.weight)
    if weight is not None and weight < 0:
        raise DataError(location, f"is negative ({weight:g}); a weight must be 0 or more", field=columns.weight)
    strength = _number(row, location, columns.strength)
    if strength is not None and not 0.5 <= strength <= 1:
        raise DataError(
            location,
            f"is {strength:g}; it is the probability that the chosen reply is preferred, between 0.5 and 1 "
            "(below 0.5, swap chosen and rejected)",
            field=columns.strength,
        )
    consistency = _number(row, location, columns.consistency)
    if consistency is not None and not 0 <= consistency <= 1:
        raise DataError(
            location,
            f"is {consistency:g}; it is how far two judges agree on the pair's ranking, between 0 and 1",
            field=columns.consistency,
        )
    chosen_rating = rating(row, location, columns.chosen_rating)
    rejected_rating = rating(row, location, columns.rejected_rating)
    if isinstance(chosen_rating, tuple) != isinstance(rejected_rating, tuple) or (
        isinstance(chosen_rating, tuple) and len(chosen_rating) != len(rejected_rating)
    ):
        raise DataError(
            location,
            f'has {describe_value(rejected_rating)} but "{columns.chosen_rating}" has {describe_value(chosen_rating)} '
            "(both replies need ratings of the same shape)",
            field=columns.rejected_rating,
        )
    context = read_context(row, location, columns.context)
    return PreferencePair(
        prompt=with_context(prompt, context),
        chosen=chosen,
        rejected=rejected,
        margin=_number(row, location, columns.margin),
        weight=1.0 if weight is None else weight,
        tie=tie,
        strength=0.5 if tie and strength is None else strength,
        chosen_rating=chosen_rating,
        rejected_rating=rejected_rating,
        id=read_label(row, location, columns.id),
        subset=read_label(row, location, columns.subset),
        annotator=read_label(row, location, columns.annotator),
        annotator_group=read_label(row, location, columns.annotator_group),
        group=read_label(row, location, columns.group),
        context=context,
        source=location,
        rejected_prompt=None if rejected_prompt is None else with_context(rejected_prompt, context),
        consistency=consistency,
    )


def _rejected_prompt(row: dict[str, Any], location: str, columns: ColumnMap, prompt: Prompt) -> Prompt | None:
    """The rejected side's own prompt, or None when the row has none or it equals ``prompt``.

    It needs the chosen side's prompt in its own field and replies as text: a prompt taken from what
    two transcripts share has no counterpart for the other side."""
    value = _optional(row, columns.rejected_prompt)
    if value is None:
        return None
    replies = (lookup_field(row, columns.chosen), lookup_field(row, columns.rejected))
    if lookup_field(row, columns.prompt) is MISSING or any(isinstance(r, list) for r in replies):
        raise DataError(
            location,
            f'needs the chosen side\'s prompt in "{columns.prompt}" and both replies as text '
            "(not transcripts or message lists)",
            field=columns.rejected_prompt,
        )
    rejected_prompt = parse_prompt(value, location, columns.rejected_prompt)
    return None if rejected_prompt == prompt else rejected_prompt


def _prompt_and_replies(row: dict[str, Any], location: str, columns: ColumnMap) -> tuple[Prompt, str, str]:
    prompt = lookup_field(row, columns.prompt)
    if prompt is MISSING and columns.prompt != _DEFAULT.prompt:
        raise DataError(location, f"is missing ({present_fields(row)})", field=columns.prompt)
    if prompt is not MISSING:
        prompt = parse_prompt(prompt, location, columns.prompt)
    chosen = _required(row, location, columns.chosen)
    rejected = _required(row, location, columns.rejected)
    if isinstance(chosen, list) or isinstance(rejected, list):
        return _conversation_form(prompt, chosen, rejected, location, columns)
    read_text(chosen, location, columns.chosen)
    read_text(rejected, location, columns.rejected)
    if prompt is not MISSING:
        return prompt, chosen, rejected
    shared, chosen_reply, rejected_reply = split_shared_prefix(chosen, rejected)
    if not shared.strip():
        raise DataError(
            location,
            f'is missing, and "{columns.chosen}" and "{columns.rejected}" share no leading text to take it '
            "from (add a prompt field, or map the field that holds it: prompt=NAME)",
            field=columns.prompt,
        )
    # A blank reply is kept: in HH-RLHF harmless data saying nothing is sometimes the preferred answer.
    return shared, chosen_reply, rejected_reply


def parse_prompt(value: Any, location: str, field_name: str) -> Prompt:
    """Validate a prompt given as non-empty text or as a list of messages (kept as a tuple)."""
    if isinstance(value, str):
        return read_text(value, location, field_name)
    return _messages(value, location, field_name)


def _conversation_form(
    prompt: Any, chosen: Any, rejected: Any, location: str, columns: ColumnMap
) -> tuple[Prompt, str, str]:
    """Conversations: the prompt is what the two sides share, or the prompt field before bare replies."""
    for field_name, value in ((columns.chosen, chosen), (columns.rejected, rejected)):
        if not isinstance(value, list):
            raise DataError(
                location,
                f"is {describe_value(value)}, but the other reply is a list of messages (give both in one form)",
                field=field_name,
            )
    chosen = _messages(chosen, location, columns.chosen)
    rejected = _messages(rejected, location, columns.rejected)
    if isinstance(prompt, str):
        prompt = ({"role": "user", "content": prompt},)
    bare_replies = all(m["role"] == "assistant" for m in (*chosen, *rejected))
    if prompt is not MISSING and bare_replies:
        # Replies without their conversation follow the given prompt; full conversations carry their own.
        chosen, rejected = (*prompt, *chosen), (*prompt, *rejected)
    try:
        shared, chosen_reply, rejected_reply = split_shared_messages(list(chosen), list(rejected))
    except SplitError as error:
        side = columns.chosen if error.side == "chosen" else columns.rejected
        raise DataError(location, error.reason, field=side) from None
    if not shared:
        raise DataError(
            location,
            "gives no prompt: the conversations share no messages before the replies "
            "(add a prompt field, or map the field that holds it: prompt=NAME)",
            field=columns.prompt,
        )
    for field_name, reply in ((columns.chosen, chosen_reply), (columns.rejected, rejected_reply)):
        if not reply["content"].strip():
            raise DataError(location, "has an empty assistant reply (expected non-empty text)", field=field_name)
    return shared, chosen_reply["content"], rejected_reply["content"]


def _messages(value: Any, location: str, field_name: str) -> tuple[Message, ...]:
    """Check a message list and keep only each message's role and content."""
    if not isinstance(value, list):
        raise DataError(location, f"is {describe_value(value)} (expected text or a list of messages)", field_name)
    if not value:
        raise DataError(location, "is an empty list of messages", field=field_name)
    messages = []
    for index, message in enumerate(value):
        where = f"message [{index}]"
        if not isinstance(message, dict):
            raise DataError(location, f"{where} is {describe_value(message)} (expected an object)", field_name)
        role, content = message.get("role", MISSING), message.get("content", MISSING)
        if role not in ROLES:
            seen = "no role" if role is MISSING else f"role {describe_value(role)}"
            raise DataError(location, f"{where} has {seen} (expected one of: {', '.join(ROLES)})", field_name)
        if not isinstance(content, str):
            seen = "no content" if content is MISSING else f"content {describe_value(content)}"
            raise DataError(location, f"{where} has {seen} (expected text)", field_name)
        messages.append({"role": role, "content": content})
    return tuple(messages)


def read_text(value: Any, location: str, field_name: str) -> str:
    if not isinstance(value, str):
        raise DataError(location, f"is {describe_value(value)} (expected text)", field=field_name)
    if not value.strip():
        raise DataError(
            location,
            f"is {'empty' if not value else 'only whitespace'} (expected non-empty text)",
            field=field_name,
        )
    return value


def _number(row: dict[str, Any], location: str, field_name: str) -> float | None:
    value = _optional(row, field_name)
    if value is None:
        return None
    numeric = isinstance(value, int | float | str) and not isinstance(value, bool)
    try:
        number = float(value) if numeric else math.nan
    except (ValueError, OverflowError):  # text that is not a number, or an integer beyond any float
        number = math.nan
    if not math.isfinite(number):
        raise DataError(location, f"is {describe_value(value)} (expected a finite number)", field=field_name)
    return number


def rating(row: dict[str, Any], location: str, field_name: str) -> float | tuple[float, ...] | None:
    """A reply's rating: a finite number, or a non-empty list of them (one per attribute)."""
    value = _optional(row, field_name)
    if not isinstance(value, list):
        return _number(row, location, field_name)
    if not value:
        raise DataError(location, "is an empty list (expected a number or one number per attribute)", field_name)
    numbers = []
    for index, item in enumerate(value):
        ok = isinstance(item, int | float) and not isinstance(item, bool) and _finite(item)
        if not ok:
            raise DataError(
                location, f"item [{index}] is {describe_value(item)} (expected a finite number)", field_name
            )
        numbers.append(float(item))
    return tuple(numbers)


def _finite(number: int | float) -> bool:
    """Whether ``number`` is a finite float; an integer too large for a float is not (``math.isfinite``
    raises ``OverflowError`` on it)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _tie(row: dict[str, Any], location: str, field_name: str) -> bool:
    value = _optional(row, field_name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DataError(location, f"is {describe_value(value)} (expected true or false)", field=field_name)


def read_context(row: dict[str, Any], location: str, field_name: str) -> str | None:
    """The row's context (text, stated before the prompt by ``with_context``), or None when it has none."""
    value = _optional(row, field_name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(location, f"is {describe_value(value)} (expected text)", field=field_name)
    return value.strip() or None


def read_label(row: dict[str, Any], location: str, field_name: str) -> str | None:
    value = _optional(row, field_name)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise DataError(location, f"is {describe_value(value)} (expected text or a number)", field=field_name)
    return str(value)


def _required(row: dict[str, Any], location: str, field_name: str) -> Any:
    value = lookup_field(row, field_name)
    if value is MISSING:
        raise DataError(location, f"is missing ({present_fields(row)})", field=field_name)
    if value is None:
        raise DataError(location, "is null (expected text or a list of messages)", field=field_name)
    return value


def _optional(row: dict[str, Any], field_name: str) -> Any:
    """An optional field's value, or None when absent, null, or an empty CSV cell."""
    value = lookup_field(row, field_name)
    return None if value is MISSING or value == "" else value


def lookup_field(row: dict[str, Any], field_name: str) -> Any:
    """Find ``field_name`` in ``row``: a key as written, else a dotted path into nested objects."""
    if field_name in row:
        return row[field_name]
    value: Any = row
    for part in field_name.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def present_fields(row: dict[str, Any]) -> str:
    names = list(row)
    shown = ", ".join(f'"{n}"' for n in names[:12]) + (", ..." if len(names) > 12 else "")
    return f"this row has {shown}" if names else "this row has no fields"


def describe_value(value: Any) -> str:
    """Name a value's type the way a JSON or CSV user would, with a short preview."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        shown = repr(value)
        return f"a number ({shown if len(shown) <= 40 else shown[:37] + '...'})"
    if isinstance(value, str):
        preview = value if len(value) <= 40 else value[:37] + "..."
        return f"text ({preview!r})"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
