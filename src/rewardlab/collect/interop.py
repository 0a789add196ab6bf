"""Items and labels to and from Label Studio and Argilla JSON exports.

**Label Studio** (its tasks JSON export, https://labelstud.io/guide/task_format): a list of tasks, each
``{"id", "data": {"prompt", "answer1", "answer2", ...}, "annotations": [...]}``. An annotation holds
``completed_by`` (a user id, or the expanded user with ``email``), ``was_cancelled`` (a skip),
``created_at`` (ISO time), ``lead_time`` (seconds spent) and ``result``, a list of
``{"type", "from_name", "to_name", "value"}`` regions:

- pairwise: ``{"type": "pairwise", "value": {"selected": "left" | "right"}}`` (the ``Pairwise`` tag) and
  a ``choices`` result from ``strength`` (``much better`` / ``better`` / ``slightly better`` / ``tie``);
  a pairwise result without strength reads as ``better`` (2), the middle of the scale;
- ranking: ``{"type": "ranker", "value": {"ranker": {LIST: ["answer2", "answer1", ...]}}}`` (the
  ``Ranker`` tag over a ``List`` of the replies, ids best first);
- rating: ``{"type": "rating", "from_name": "rating_N", "value": {"rating": r}}`` per reply N;
- attributes: the same with ``from_name`` ``ATTRIBUTE_N``;
- a free-text reason: ``{"type": "textarea", "from_name": "reason", "value": {"text": [...]}}``.

**Argilla** (v2 ``dataset.records.to_json``): a list of records ``{"id", "fields": {"prompt",
"reply_1", ...}, "metadata", "responses": {QUESTION: [{"value", "user_id", "status"}]}}`` with
``status`` ``submitted`` or ``discarded`` (a skip; ``draft`` responses are not labels yet):

- pairwise: the LabelQuestion ``preference`` with one of :data:`PAIRWISE_LABELS`, or a
  RankingQuestion ``preference`` over ``reply_1``/``reply_2`` (equal ranks are a tie);
- ranking: the RankingQuestion ``ranking``, the option values (``reply_N``) best first;
- rating: a RatingQuestion ``rating_N`` (1..7) per reply; attributes: ``ATTRIBUTE_N``;
- the TextQuestion ``reason``.

Argilla names users only by id; an export from here writes ids derived from the annotator names and
keeps the names in the record metadata ``rewardlab_users``, and ``users`` maps other ids to names.
Argilla exports carry no times, so imported labels have no time per label.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rewardlab.atomic import write_text_atomic
from rewardlab.collect.items import KINDS, CollectItem, item_key

if TYPE_CHECKING:
    from rewardlab.collect.store import Store

FORMATS = ("rewardlab", "argilla", "label-studio")
"""Export formats; import reads the last two."""

STRENGTHS = {3: "much better", 2: "better", 1: "slightly better"}
"""Label Studio ``strength`` choices for a preference's strength."""
PAIRWISE_LABELS = {
    "a_much_better": ("a", 3),
    "a_better": ("a", 2),
    "a_slightly_better": ("a", 1),
    "tie": ("tie", 0),
    "b_slightly_better": ("b", 1),
    "b_better": ("b", 2),
    "b_much_better": ("b", 3),
}
"""Argilla ``preference`` labels and the (choice, strength) each stands for."""
_REPLY = re.compile(r"^(?:answer|reply|response|completion)[_-]?(\d+)$")
_USERS = uuid.UUID("6f1c5b0e-3d2a-4c41-9a57-0d6b5f2e7a10")
"""Namespace of the Argilla user ids derived from annotator names."""


class ItemLike(Protocol):
    id: int
    key: str
    prompt: str
    replies: tuple[str, ...]


class LabelLike(Protocol):
    id: int
    item_id: int
    annotator: str
    payload: dict
    skipped: bool
    reason: str
    shown_at: float
    created_at: float


@dataclass(frozen=True)
class ImportedLabel:
    """One annotator's answer to one item, keyed by the item's ``key``."""

    item_key: str
    annotator: str
    payload: dict
    skipped: bool
    reason: str
    shown_at: float
    created_at: float
    source_id: str
    """Where it came from in the file (task/annotation or record/user id): makes re-imports idempotent."""


@dataclass(frozen=True)
class Imported:
    items: list[CollectItem]
    labels: list[ImportedLabel]


class _Where:
    """Names the place of a bad value: ``FILE: record N: field "F" ...``."""

    def __init__(self, path: Path, index: int) -> None:
        self.prefix = f"{path}: record {index}"

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f'{self.prefix}: field "{field}" {problem}')


# ---------------------------------------------------------------- shared


def _read_list(path: str | Path) -> tuple[Path, list[Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return path, data


def _item(fields: Any, field: str, where: _Where, key: Any) -> CollectItem:
    """An item from ``{"prompt", "answer1"|"reply_1"|..., ...}`` (the replies in their numbered order)."""
    if not isinstance(fields, dict):
        raise where.fail(field, f"must be an object, got {fields!r:.60}")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise where.fail(f"{field}.prompt", f"must be non-empty text, got {prompt!r:.60}")
    numbered = sorted((int(m.group(1)), name) for name in fields if (m := _REPLY.match(name)))
    replies = tuple(fields[name] for _, name in numbered)
    if len(replies) < 2 or [n for n, _ in numbered] != list(range(1, len(replies) + 1)):
        raise where.fail(field, f"must hold replies numbered from 1 (answer1, answer2, ...), got {sorted(fields)}")
    for (_, name), reply in zip(numbered, replies, strict=True):
        if not isinstance(reply, str) or not reply.strip():
            raise where.fail(f"{field}.{name}", f"must be non-empty text, got {reply!r:.60}")
    key = key if isinstance(key, str) and key else item_key(prompt, replies)
    return CollectItem(prompt=prompt, replies=replies, key=key)


def _check_kind(kind: str, attributes: Sequence[str]) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "attributes" and not attributes:
        raise ValueError("kind attributes needs the project's attribute names")


def _order(ids: Any, n_replies: int, field: str, where: _Where) -> list[int]:
    """Reply indexes from ids like ``answer2``/``reply_2`` (best first); every reply exactly once."""
    if not isinstance(ids, list):
        raise where.fail(field, f"must be a list of reply ids, got {ids!r:.60}")
    order = []
    for value in ids:
        match = _REPLY.match(value) if isinstance(value, str) else None
        if match is None:
            raise where.fail(field, f"holds {value!r}, not a reply id like answer1 or reply_1")
        order.append(int(match.group(1)) - 1)
    if sorted(order) != list(range(n_replies)):
        raise where.fail(field, f"must rank each of the {n_replies} replies once, got {ids}")
    return order


def _rating(value: Any, field: str, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 1 <= value <= 7:
        raise where.fail(field, f"must be a whole rating from 1 to 7, got {value!r}")
    return int(value)


def _ratings(found: Mapping[str, Any], names: Sequence[str], n: int, where: _Where, field: str) -> dict:
    """``{"ratings": [...]}`` (names ``[""]``) or ``{"ratings": {name: [...]}}`` from ``found[NAME_N]``."""
    out = {}
    for name in names:
        questions = [f"{name or 'rating'}_{i + 1}" for i in range(n)]
        missing = [q for q in questions if q not in found]
        if missing:
            raise where.fail(field, f"has no rating {missing[0]} (each reply needs one)")
        out[name] = [_rating(found[q], f"{field}.{q}", where) for q in questions]
    return {"ratings": out[""]} if names == [""] else {"ratings": out}


def _rating_names(kind: str, attributes: Sequence[str]) -> list[str]:
    return list(attributes) if kind == "attributes" else [""]


def _rating_cells(kind: str, attributes: Sequence[str], payload: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """(question name, reply index, rating) of a rating or attributes label, in both tools' naming:
    ``rating_N`` for a rating, ``ATTRIBUTE_N`` for an attribute (N counts replies from 1)."""
    ratings = {"": payload["ratings"]} if kind == "rating" else payload["ratings"]
    return [
        (f"{name or 'rating'}_{i + 1}", i, r)
        for name in _rating_names(kind, attributes)
        for i, r in enumerate(ratings[name])
    ]


def write_json(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write the records as one JSON list, atomically."""
    write_text_atomic(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")


def _grouped(items: Sequence[ItemLike], labels: Sequence[LabelLike]) -> list[tuple[ItemLike, list[LabelLike]]]:
    by_item: dict[int, list[LabelLike]] = {}
    for label in labels:
        by_item.setdefault(label.item_id, []).append(label)
    return [(item, sorted(by_item.get(item.id, []), key=lambda label: label.id)) for item in items]


# ---------------------------------------------------------------- Label Studio


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _ls_results(kind: str, payload: Mapping[str, Any], n: int, attributes: Sequence[str]) -> list[dict]:
    if kind == "pairwise":
        out = []
        if payload["choice"] != "tie":
            side = "left" if payload["choice"] == "a" else "right"
            out.append(
                {"type": "pairwise", "from_name": "pw", "to_name": "answer1,answer2", "value": {"selected": side}}
            )
        strength = "tie" if payload["choice"] == "tie" else STRENGTHS[int(payload["strength"])]
        out.append({"type": "choices", "from_name": "strength", "to_name": "prompt", "value": {"choices": [strength]}})
        return out
    if kind == "ranking":
        ids = [f"answer{i + 1}" for i in payload["order"]]
        return [{"type": "ranker", "from_name": "rank", "to_name": "replies", "value": {"ranker": {"replies": ids}}}]
    return [
        {"type": "rating", "from_name": question, "to_name": f"answer{i + 1}", "value": {"rating": r}}
        for question, i, r in _rating_cells(kind, attributes, payload)
    ]


def to_label_studio(
    items: Sequence[ItemLike], labels: Sequence[LabelLike], kind: str, attributes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Label Studio tasks with their annotations; annotator names go in ``completed_by.email``."""
    _check_kind(kind, attributes)
    user_ids = {name: i + 1 for i, name in enumerate(sorted({label.annotator for label in labels}))}
    tasks = []
    for item, item_labels in _grouped(items, labels):
        data: dict[str, Any] = {"key": item.key, "prompt": item.prompt}
        data.update({f"answer{i + 1}": reply for i, reply in enumerate(item.replies)})
        if kind == "ranking":  # the List tag the Ranker orders
            data["replies"] = [{"id": f"answer{i + 1}", "body": reply} for i, reply in enumerate(item.replies)]
        annotations = []
        for label in item_labels:
            result = [] if label.skipped else _ls_results(kind, label.payload, len(item.replies), attributes)
            if label.reason:
                result.append(
                    {"type": "textarea", "from_name": "reason", "to_name": "prompt", "value": {"text": [label.reason]}}
                )
            for n, region in enumerate(result):
                region["id"] = f"r{label.id}-{n}"
            annotations.append(
                {
                    "id": label.id,
                    "completed_by": {"id": user_ids[label.annotator], "email": label.annotator},
                    "result": result,
                    "was_cancelled": label.skipped,
                    "created_at": _iso(label.created_at),
                    "lead_time": round(label.created_at - label.shown_at, 6),
                }
            )
        tasks.append({"id": item.id, "data": data, "annotations": annotations})
    return tasks


def _ls_user(value: Any, users: Mapping[str, str], field: str, where: _Where) -> str:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise where.fail(field, f"must name the annotator (a user id or an object with email), got {value!r:.60}")
    return users.get(str(value), str(value))


def _ls_reason(result: list) -> str:
    """The text of the ``textarea`` results, one per line."""
    texts = [
        text
        for region in result
        if isinstance(region, dict) and region.get("type") == "textarea" and isinstance(region.get("value"), dict)
        for text in region["value"].get("text", [])
        if isinstance(text, str)
    ]
    return "\n".join(texts)


def _ls_payload(
    kind: str, result: Any, n: int, attributes: Sequence[str], field: str, where: _Where
) -> tuple[dict, str]:
    """(payload, reason) from one annotation's ``result`` list."""
    if not isinstance(result, list):
        raise where.fail(field, f"must be a list of results, got {result!r:.60}")
    by_type: dict[str, list[tuple[int, dict]]] = {}
    for i, region in enumerate(result):
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise where.fail(f"{field}[{i}]", "must be an object with a value object")
        by_type.setdefault(str(region.get("type")), []).append((i, region))
    reason = _ls_reason(result)
    if kind == "pairwise":
        strength = None
        for i, region in by_type.get("choices", []):
            if region.get("from_name") == "strength":
                choices = region["value"].get("choices")
                reverse = {v: k for k, v in STRENGTHS.items()} | {"tie": 0}
                if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in reverse:
                    raise where.fail(
                        f"{field}[{i}].value.choices", f"must be one of {sorted(reverse)}, got {choices!r:.60}"
                    )
                strength = reverse[choices[0]]
        if strength == 0:
            return {"choice": "tie"}, reason
        pairs = by_type.get("pairwise", [])
        if len(pairs) != 1:
            raise where.fail(field, f"must hold one pairwise result (or a strength choice tie), found {len(pairs)}")
        i, region = pairs[0]
        selected = region["value"].get("selected")
        if selected not in ("left", "right"):
            raise where.fail(f"{field}[{i}].value.selected", f'must be "left" or "right", got {selected!r:.60}')
        return {"choice": "a" if selected == "left" else "b", "strength": strength or 2}, reason
    if kind == "ranking":
        ranks = by_type.get("ranker", [])
        if len(ranks) != 1:
            raise where.fail(field, f"must hold one ranker result, found {len(ranks)}")
        i, region = ranks[0]
        ranker = region["value"].get("ranker")
        lists = [v for k, v in ranker.items() if k != "_"] if isinstance(ranker, dict) else [ranker]
        if len(lists) != 1:
            raise where.fail(f"{field}[{i}].value.ranker", f"must hold one list of reply ids, got {ranker!r:.80}")
        return {"order": _order(lists[0], n, f"{field}[{i}].value.ranker", where)}, reason
    found = {}
    for _, region in by_type.get("rating", []):
        found[str(region.get("from_name"))] = region["value"].get("rating")
    return _ratings(found, _rating_names(kind, attributes), n, where, field), reason


def _ls_time(annotation: dict, field: str, where: _Where) -> tuple[float, float]:
    """(shown_at, created_at) from ISO ``created_at`` and ``lead_time``; now when absent."""
    created = annotation.get("created_at")
    if created is None:
        created_at = time.time()
    else:
        try:
            created_at = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise where.fail(f"{field}.created_at", f"must be an ISO date-time, got {created!r:.60}") from None
    lead = annotation.get("lead_time") or 0.0
    if isinstance(lead, bool) or not isinstance(lead, (int, float)) or lead < 0:
        raise where.fail(f"{field}.lead_time", f"must be seconds (0 or more), got {lead!r:.60}")
    return created_at - float(lead), created_at


def read_label_studio(
    path: str | Path, kind: str, attributes: Sequence[str] = (), users: Mapping[str, str] | None = None
) -> Imported:
    """Items and labels from a Label Studio tasks JSON export (see the module docstring for the results)."""
    _check_kind(kind, attributes)
    path, tasks = _read_list(path)
    users = users or {}
    items, labels = [], []
    for index, task in enumerate(tasks):
        where = _Where(path, index)
        if not isinstance(task, dict):
            raise where.fail("task", f"must be an object, got {task!r:.60}")
        data = task.get("data")
        item = _item(data, "data", where, data.get("key") if isinstance(data, dict) else None)
        items.append(item)
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise where.fail("annotations", f"must be a list, got {annotations!r:.60}")
        for j, annotation in enumerate(annotations):
            field = f"annotations[{j}]"
            if not isinstance(annotation, dict):
                raise where.fail(field, f"must be an object, got {annotation!r:.60}")
            name = _ls_user(annotation.get("completed_by"), users, f"{field}.completed_by", where)
            skipped = bool(annotation.get("was_cancelled"))
            if skipped:
                payload: dict = {}
                reason = _ls_reason(annotation.get("result") or [])
            else:
                payload, reason = _ls_payload(
                    kind, annotation.get("result"), len(item.replies), attributes, f"{field}.result", where
                )
            shown_at, created_at = _ls_time(annotation, field, where)
            source = f"label-studio:{task.get('id', index)}:{annotation.get('id', j)}"
            labels.append(ImportedLabel(item.key, name, payload, skipped, reason, shown_at, created_at, source))
    return Imported(items, labels)


# ---------------------------------------------------------------- Argilla


def argilla_user_id(name: str) -> str:
    """The Argilla user id an export gives annotator ``name`` (a UUID derived from the name)."""
    return str(uuid.uuid5(_USERS, name))


def _argilla_values(kind: str, payload: Mapping[str, Any], attributes: Sequence[str]) -> dict[str, Any]:
    if kind == "pairwise":
        choice, strength = payload["choice"], payload.get("strength", 0)
        return {
            "preference": next(
                k for k, v in PAIRWISE_LABELS.items() if v == (choice, strength if choice != "tie" else 0)
            )
        }
    if kind == "ranking":
        return {"ranking": [f"reply_{i + 1}" for i in payload["order"]]}
    return {question: r for question, _, r in _rating_cells(kind, attributes, payload)}


def to_argilla(
    items: Sequence[ItemLike], labels: Sequence[LabelLike], kind: str, attributes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Argilla v2 records (``Record.from_dict`` reads them); a skip is a ``discarded`` ``reason``."""
    _check_kind(kind, attributes)
    records = []
    for item, item_labels in _grouped(items, labels):
        fields = {"prompt": item.prompt} | {f"reply_{i + 1}": reply for i, reply in enumerate(item.replies)}
        responses: dict[str, list[dict[str, Any]]] = {}
        for label in item_labels:
            user = argilla_user_id(label.annotator)
            values = {} if label.skipped else _argilla_values(kind, label.payload, attributes)
            if label.reason or label.skipped:
                values["reason"] = label.reason
            status = "discarded" if label.skipped else "submitted"
            for question, value in values.items():
                responses.setdefault(question, []).append({"value": value, "user_id": user, "status": status})
        users = {argilla_user_id(label.annotator): label.annotator for label in item_labels}
        records.append(
            {
                "id": item.key,
                "fields": fields,
                "metadata": {"rewardlab_users": json.dumps(users, ensure_ascii=False)} if users else {},
                "suggestions": {},
                "responses": responses,
                "vectors": {},
                "_server_id": None,
            }
        )
    return records


def _ranked(value: list) -> list | None:
    """Option values best first from a v2 list of values or a v1 list of ``{"value", "rank"}``; None when
    two share a rank (Argilla v1 allowed ties)."""
    if not all(isinstance(v, dict) for v in value):
        return value
    ranks = [v.get("rank", k + 1) for k, v in enumerate(value)]
    if len(set(ranks)) < len(ranks):
        return None
    return [v.get("value") for _, v in sorted(zip(ranks, value, strict=True), key=lambda pair: pair[0])]


def _argilla_payload(
    kind: str, found: Mapping[str, Any], n: int, attributes: Sequence[str], field: str, where: _Where
) -> dict:
    if kind == "pairwise":
        value = found.get("preference")
        if isinstance(value, str) and value in PAIRWISE_LABELS:
            choice, strength = PAIRWISE_LABELS[value]
            return {"choice": "tie"} if choice == "tie" else {"choice": choice, "strength": strength}
        if isinstance(value, list) and len(value) == 2:  # a RankingQuestion over the two replies
            ranked = _ranked(value)
            if ranked is None:
                return {"choice": "tie"}
            order = _order(ranked, n, f"{field}.preference", where)
            return {"choice": "a" if order[0] == 0 else "b", "strength": 2}
        raise where.fail(
            f"{field}.preference",
            f"must be one of {', '.join(PAIRWISE_LABELS)} (or a 2-reply ranking), got {value!r:.60}",
        )
    if kind == "ranking":
        value = found.get("ranking")
        ranked = _ranked(value) if isinstance(value, list) else value
        if ranked is None:
            raise where.fail(f"{field}.ranking", "ranks two replies equally; a ranking here has no ties")
        return {"order": _order(ranked, n, f"{field}.ranking", where)}
    return _ratings(found, _rating_names(kind, attributes), n, where, field)


def read_argilla(
    path: str | Path, kind: str, attributes: Sequence[str] = (), users: Mapping[str, str] | None = None
) -> Imported:
    """Items and labels from Argilla v2 records JSON (see the module docstring for the questions)."""
    _check_kind(kind, attributes)
    path, records = _read_list(path)
    now = time.time()
    items, labels = [], []
    for index, record in enumerate(records):
        where = _Where(path, index)
        if not isinstance(record, dict):
            raise where.fail("record", f"must be an object, got {record!r:.60}")
        item = _item(record.get("fields"), "fields", where, record.get("id"))
        items.append(item)
        names = dict(users or {})
        metadata = record.get("metadata") or {}
        if isinstance(metadata, dict) and isinstance(metadata.get("rewardlab_users"), str):
            names = json.loads(metadata["rewardlab_users"]) | names
        responses = record.get("responses") or {}
        if not isinstance(responses, dict):
            raise where.fail("responses", f"must map question names to lists of responses, got {responses!r:.60}")
        per_user: dict[str, dict[str, Any]] = {}
        status: dict[str, str] = {}
        for question, answers in responses.items():
            if not isinstance(answers, list):
                raise where.fail(f"responses.{question}", f"must be a list, got {answers!r:.60}")
            for j, answer in enumerate(answers):
                field = f"responses.{question}[{j}]"
                if not isinstance(answer, dict) or not answer.get("user_id"):
                    raise where.fail(field, "must be an object with value and user_id")
                state = answer.get("status") or "submitted"
                if state not in ("submitted", "discarded", "draft"):
                    raise where.fail(
                        f"{field}.status", f'must be "submitted", "discarded" or "draft", got {state!r:.60}'
                    )
                user = str(answer["user_id"])
                per_user.setdefault(user, {})[question] = answer.get("value")
                if status.get(user, state) != state:
                    raise where.fail(
                        f"{field}.status", f"is {state!r} but this user's other responses are {status[user]!r}"
                    )
                status[user] = state
        for user, found in per_user.items():
            if status[user] == "draft":
                continue
            field = f"responses (user {user})"
            skipped = status[user] == "discarded"
            payload = {} if skipped else _argilla_payload(kind, found, len(item.replies), attributes, field, where)
            reason = found.get("reason") if isinstance(found.get("reason"), str) else ""
            source = f"argilla:{record.get('id', index)}:{user}"
            labels.append(ImportedLabel(item.key, names.get(user, user), payload, skipped, reason, now, now, source))
    return Imported(items, labels)


def read_import(
    path: str | Path, source: str, kind: str, attributes: Sequence[str] = (), users: Mapping[str, str] | None = None
) -> Imported:
    """:func:`read_argilla` or :func:`read_label_studio` by ``source`` name."""
    readers = {"argilla": read_argilla, "label-studio": read_label_studio}
    if source not in readers:
        raise ValueError(f"--from must be one of {', '.join(readers)}, got {source!r}")
    return readers[source](path, kind, attributes, users)


def export_records(
    items: Sequence[ItemLike], labels: Sequence[LabelLike], fmt: str, kind: str, attributes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """:func:`to_argilla` or :func:`to_label_studio` by format name."""
    writers = {"argilla": to_argilla, "label-studio": to_label_studio}
    if fmt not in writers:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return writers[fmt](items, labels, kind, attributes)


IMPORTED = "imported"
"""The ``selection`` of labels that came from a file: neither actively nor randomly chosen here."""


def import_into(store: Store, imported: Imported) -> tuple[int, int]:
    """Add the items and labels to ``store``; annotators new to it are added (their login token is not
    kept: ``Store.reset_token`` makes one). Returns (new items, new labels); importing again adds nothing."""
    new_items = store.add_items(imported.items)
    ids = {item.key: item.id for item in store.items()}
    annotators = {a.name: a.id for a in store.annotators()}
    new_labels = 0
    for label in imported.labels:
        if label.annotator not in annotators:
            store.add_annotator(label.annotator)
            annotators = {a.name: a.id for a in store.annotators()}
        new_labels += store.record_label(
            annotator_id=annotators[label.annotator],
            item_id=ids[label.item_key],
            submission_id=label.source_id,
            payload=label.payload,
            skipped=label.skipped,
            reason=label.reason,
            shown_at=label.shown_at,
            selection=IMPORTED,
        )
    return new_items, new_labels
