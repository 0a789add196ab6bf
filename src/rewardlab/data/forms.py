"""Records beyond a plain pair: graded pairs, k-wise judgements and trees of replies.

Each form is recognised by its fields (named through the ``ColumnMap``) and becomes pairs, so
every pairwise objective and metric reads it; a full ranking is also kept whole for objectives
over rankings (Plackett-Luce). Pairs drawn from one record share a ``group`` and are split together.

- graded: ``response_a``, ``response_b`` and a five-level ``preference`` (Tulu's human evaluation:
  a-is-better, a-is-slightly-better, tie, b-is-slightly-better, b-is-better);
- k-wise: ``responses`` with a ``ranking`` (indices, best first) or ``judgements`` of every pair in
  the order (1,2), (1,3)... (k-1,k), each 1 (first better), 2 (second better) or 0 (neither: a tie),
  as in FineGrained-RLHF's QA feedback (judgements with no tie and no cycle also state a ranking);
- tree: ``nodes`` (``id``, ``parent``, ``text``; a reply is the text along the path from a root to
  a node, so siblings share their prefix) and ``comparisons`` (``chosen`` and ``rejected`` node ids,
  optional ``tie``), the tree-structured preferences of "Reward Generalization in RLHF: A
  Topological Perspective".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rewardlab.data.context import with_context
from rewardlab.data.records import DataError, PreferencePair, Prompt, Ranking
from rewardlab.data.schema import (
    MISSING,
    ColumnMap,
    NoPreference,
    describe_value,
    lookup_field,
    parse_pair,
    parse_prompt,
    present_fields,
    read_context,
    read_label,
    read_text,
)

MAX_PAIRS_PER_ROW = 10_000
"""Pairs one k-wise or tree row may expand to: 1,500 replies would make 1.12 million, and memory with them."""

SLIGHTLY_BETTER = 0.75
"""Probability that the preferred reply wins when it is labelled only "slightly better"."""

GRADES: dict[str, tuple[str | None, float]] = {
    "a-is-better": ("a", 1.0),
    "a-is-slightly-better": ("a", SLIGHTLY_BETTER),
    "tie": (None, 0.5),
    "b-is-slightly-better": ("b", SLIGHTLY_BETTER),
    "b-is-better": ("b", 1.0),
}


UNPAIRED_KTO = (
    'unpaired KTO rows ("prompt", "completion", "label": one reply judged good or bad on its own) are not '
    "preference pairs, and every rewardlab objective learns from pairs; pair them (for one prompt, a completion "
    'labelled true as "chosen" and one labelled false as "rejected"), or train on them as they are with TRL\'s '
    "KTOTrainer"
)
"""Why a row in TRL's unpaired preference form (KTO's data) is refused, and what to do instead."""


@dataclass
class ParsedRow:
    """What one row holds: its pairs, and the ranking it states, if it states a full one."""

    pairs: list[PreferencePair] = field(default_factory=list)
    ranking: Ranking | None = None


def parse_row(
    row: dict[str, Any], location: str, columns: ColumnMap, max_pairs_per_row: int = MAX_PAIRS_PER_ROW
) -> ParsedRow:
    """Recognise the row's form by its fields and validate it; raise ``DataError`` on the first problem,
    including a k-wise or tree row that would expand to more than ``max_pairs_per_row`` pairs."""
    if _has(row, columns.chosen):
        return ParsedRow([parse_pair(row, location, columns)])
    if _has(row, columns.response_a):
        return ParsedRow([_graded(row, location, columns)])
    if _has(row, columns.responses) or "|" in columns.responses:
        return _kwise(row, location, columns, max_pairs_per_row)
    if _has(row, columns.nodes):
        return ParsedRow(_tree(row, location, columns, max_pairs_per_row))
    if _has(row, "completion") and _has(row, "label"):
        raise DataError(location, UNPAIRED_KTO)
    return ParsedRow([parse_pair(row, location, columns)])  # reports the missing "chosen"


def _graded(row: dict[str, Any], location: str, columns: ColumnMap) -> PreferencePair:
    prompt = _prompt(row, location, columns)
    a = read_text(_required(row, location, columns.response_a), location, columns.response_a)
    b = read_text(_required(row, location, columns.response_b), location, columns.response_b)
    label = _required(row, location, columns.preference)
    if label not in GRADES:
        raise DataError(
            location, f"is {describe_value(label)} (expected one of: {', '.join(GRADES)})", columns.preference
        )
    winner, strength = GRADES[label]
    if a == b and winner is not None:
        raise NoPreference(
            location, f'is identical to "{columns.response_a}" but one is labelled better', columns.response_b
        )
    chosen, rejected = (b, a) if winner == "b" else (a, b)
    return PreferencePair(
        prompt,
        chosen,
        rejected,
        tie=winner is None,
        strength=strength,
        id=read_label(row, location, columns.id),
        subset=read_label(row, location, columns.subset),
        annotator=read_label(row, location, columns.annotator),
        annotator_group=read_label(row, location, columns.annotator_group),
        group=read_label(row, location, columns.group),
        context=read_context(row, location, columns.context),
        source=location,
    )


def _kwise(row: dict[str, Any], location: str, columns: ColumnMap, max_pairs: int) -> ParsedRow:
    prompt = _prompt(row, location, columns)
    responses = _responses(row, location, columns)
    k = len(responses)
    _check_expansion(k * (k - 1) // 2, f"{k} replies", location, columns.responses, max_pairs)
    common = {
        "subset": read_label(row, location, columns.subset),
        "annotator": read_label(row, location, columns.annotator),
        "group": _group(row, location, columns, prompt, responses),
        "context": read_context(row, location, columns.context),
        "source": location,
    }
    ranking, judgements = lookup_field(row, columns.ranking), lookup_field(row, columns.judgements)
    if (ranking is MISSING) == (judgements is MISSING):
        given = "both" if ranking is not MISSING else "neither"
        raise DataError(
            location,
            f'has {given} of "{columns.ranking}" and "{columns.judgements}" (a k-wise record needs exactly one)',
            columns.ranking,
        )
    if ranking is not MISSING:
        if not _is_permutation(ranking, k):
            raise DataError(
                location,
                f"is {describe_value(ranking)} (expected each index 0..{k - 1} once, best reply first)",
                columns.ranking,
            )
        ordered = Ranking(
            prompt, tuple(responses[i] for i in ranking), id=read_label(row, location, columns.id), **common
        )
        return ParsedRow(ordered.pairs(), ordered)
    expected = k * (k - 1) // 2
    if not isinstance(judgements, list) or len(judgements) != expected:
        raise DataError(
            location,
            f"is {describe_value(judgements)} (expected {expected} judgements for {k} replies, in the order "
            "(1,2), (1,3), ... each 1, 2 or 0)",
            columns.judgements,
        )
    pairs = []
    order = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for index, ((i, j), verdict) in enumerate(zip(order, judgements, strict=True)):
        if verdict not in (0, 1, 2) or isinstance(verdict, bool):
            raise DataError(
                location,
                f"item [{index}] is {describe_value(verdict)} (expected 1, 2 or 0 for neither)",
                columns.judgements,
            )
        if responses[i] == responses[j] and verdict:
            continue  # the same text twice carries no preference, whatever the label says
        first, second = (responses[j], responses[i]) if verdict == 2 else (responses[i], responses[j])
        pairs.append(
            PreferencePair(prompt, first, second, tie=verdict == 0, strength=0.5 if verdict == 0 else None, **common)
        )
    ranking = _implied_ranking(responses, order, judgements)
    if ranking is None:
        return ParsedRow(pairs)
    stated = Ranking(prompt, ranking, id=read_label(row, location, columns.id), **common)
    return ParsedRow(pairs, stated)


def _implied_ranking(
    responses: list[str], order: list[tuple[int, int]], judgements: list[int]
) -> tuple[str, ...] | None:
    """The full ranking (best first) that judgements of every pair state when they have no tie and no cycle.

    Then the reply that wins j comparisons is ranked (k − j)-th and the ranking's pairs are exactly
    the judged ones; otherwise (a tie, a cycle, a repeated text) there is no ranking, only the pairs.
    """
    k = len(responses)
    if 0 in judgements or len(set(responses)) < k:
        return None
    wins = [0] * k
    for (i, j), verdict in zip(order, judgements, strict=True):
        wins[i if verdict == 1 else j] += 1
    if sorted(wins) != list(range(k)):
        return None
    return tuple(responses[i] for i in sorted(range(k), key=lambda i: -wins[i]))


def _check_expansion(pairs: int, what: str, location: str, name: str, max_pairs: int) -> None:
    if pairs > max_pairs:
        raise DataError(
            location,
            f"expands to {pairs:,} pairs ({what}), over the limit of {max_pairs:,} pairs per row; "
            "split the row, or raise the limit (data.max_pairs_per_row=N in a run, max_pairs_per_row= in Python)",
            name,
        )


def _tree(row: dict[str, Any], location: str, columns: ColumnMap, max_pairs: int) -> list[PreferencePair]:
    prompt = _prompt(row, location, columns)
    comparisons = lookup_field(row, columns.comparisons)
    if isinstance(comparisons, list):
        _check_expansion(len(comparisons), f"{len(comparisons)} comparisons", location, columns.comparisons, max_pairs)
    nodes = lookup_field(row, columns.nodes)
    if not isinstance(nodes, list) or not nodes:
        raise DataError(location, f"is {describe_value(nodes)} (expected a list of nodes)", columns.nodes)
    parents: dict[str, str | None] = {}
    texts: dict[str, str] = {}
    for index, node in enumerate(nodes):
        where = f"node [{index}]"
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("id"), str | int)
            or not isinstance(node.get("text"), str)
        ):
            raise DataError(location, f"{where} needs an id and a text (got {describe_value(node)})", columns.nodes)
        key = str(node["id"])
        if key in texts:
            raise DataError(location, f"{where} repeats the id {key!r}", columns.nodes)
        parent = node.get("parent")
        parents[key], texts[key] = (None if parent is None else str(parent)), node["text"]
    paths = {key: _path_text(key, parents, texts, location, columns.nodes) for key in texts}
    comparisons = lookup_field(row, columns.comparisons)
    if not isinstance(comparisons, list) or not comparisons:
        raise DataError(
            location, f"is {describe_value(comparisons)} (expected a list of comparisons)", columns.comparisons
        )
    group = _group(row, location, columns, prompt, sorted(paths.values()))
    pairs = []
    for index, item in enumerate(comparisons):
        where = f"item [{index}]"
        if not isinstance(item, dict):
            raise DataError(location, f"{where} is {describe_value(item)} (expected an object)", columns.comparisons)
        ids = [str(item.get(side)) for side in ("chosen", "rejected")]
        unknown = [i for i in ids if i not in paths]
        if unknown:
            raise DataError(
                location, f"{where} names node {unknown[0]!r}, which is not in the tree", columns.comparisons
            )
        tie = bool(item.get("tie", False))
        if ids[0] == ids[1] or (paths[ids[0]] == paths[ids[1]] and not tie):
            raise DataError(location, f"{where} compares a reply with itself", columns.comparisons)
        pairs.append(
            PreferencePair(
                prompt,
                paths[ids[0]],
                paths[ids[1]],
                tie=tie,
                strength=0.5 if tie else None,
                subset=read_label(row, location, columns.subset),
                annotator=read_label(row, location, columns.annotator),
                group=group,
                context=read_context(row, location, columns.context),
                source=location,
            )
        )
    return pairs


def _path_text(key: str, parents: dict[str, str | None], texts: dict[str, str], location: str, name: str) -> str:
    """The reply a node stands for: the texts from its root down to it."""
    parts, seen = [], set()
    node: str | None = key
    while node is not None:
        if node in seen:
            raise DataError(location, f"has a cycle through node {node!r}", name)
        if node not in texts:
            raise DataError(location, f"names parent {node!r}, which is not a node", name)
        seen.add(node)
        parts.append(texts[node])
        node = parents[node]
    reply = "".join(reversed(parts))
    if not reply.strip():
        raise DataError(location, f"node {key!r} stands for an empty reply", name)
    return reply


def _responses(row: dict[str, Any], location: str, columns: ColumnMap) -> list[str]:
    names = [n.strip() for n in columns.responses.split("|")]
    if len(names) > 1:
        return [read_text(_required(row, location, n), location, n) for n in names]
    values = _required(row, location, names[0])
    if not isinstance(values, list) or len(values) < 2:
        raise DataError(location, f"is {describe_value(values)} (expected a list of at least two replies)", names[0])
    return [read_text(v, location, f"{names[0]}[{i}]") for i, v in enumerate(values)]


def _prompt(row: dict[str, Any], location: str, columns: ColumnMap) -> Prompt:
    """The row's prompt, with its context stated before it (``data/context.py``)."""
    prompt = parse_prompt(_required(row, location, columns.prompt), location, columns.prompt)
    return with_context(prompt, read_context(row, location, columns.context))


def _required(row: dict[str, Any], location: str, name: str) -> Any:
    value = lookup_field(row, name)
    if value is MISSING or value is None:
        raise DataError(location, f"is missing ({present_fields(row)})", field=name)
    return value


def _has(row: dict[str, Any], name: str) -> bool:
    return lookup_field(row, name) is not MISSING


def _is_permutation(value: Any, k: int) -> bool:
    ints = isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    return ints and sorted(value) == list(range(k))


def _group(row: dict[str, Any], location: str, columns: ColumnMap, prompt: Prompt, replies: list[str]) -> str:
    """The record's id if it has one, else a digest of its content: stable when the file is reordered."""
    given = read_label(row, location, columns.id)
    if given is not None:
        return given
    content = json.dumps([prompt if isinstance(prompt, str) else list(prompt), replies], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
