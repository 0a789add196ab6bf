"""Collected labels as rewardlab preference records: the JSONL every rewardlab command reads.

- pairwise: one pair a label, ``prompt``, ``chosen``, ``rejected``, ``tie`` and ``strength``, the probability
  that ``chosen`` is preferred, on the graded scale ``data/forms.py`` reads (Tulu's "better" 1.0, "slightly
  better" 0.75): much better (3) → 1.0, better (2) → 0.875 (halfway), slightly better (1) → 0.75, tie → 0.5;
- ranking: one k-wise row a label, ``responses`` and ``ranking`` (indexes, best first), which rewardlab reads
  whole for Plackett-Luce and as its k(k-1)/2 pairs for pairwise objectives;
- rating: every pair of one label's replies, the higher rated as ``chosen`` (equal ratings: a tie), with
  ``chosen_rating``/``rejected_rating`` (1..7), so ratings-based objectives read the numbers;
- attributes: the same, the ratings being one number per attribute (in ``attributes`` order, written in the
  row's ``attributes`` field) and the side chosen by their mean.

Every row keeps ``annotator`` (the annotator's name), ``id`` (item key and annotator) and ``group`` (the item's
key, so all labels of one item fall on the same side of a train/test split). Skips are not exported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_jsonl
from rewardlab.collect.store import Store, StoredItem, StoredLabel

STRENGTH = {3: 1.0, 2: 0.875, 1: 0.75}
"""Pairwise strength level → probability that the chosen reply is preferred (see the module docstring)."""


def _common(item: StoredItem, label: StoredLabel) -> dict[str, Any]:
    return {"annotator": label.annotator, "id": f"{item.key}:{label.annotator}", "group": item.key}


def _pairwise(item: StoredItem, label: StoredLabel) -> dict[str, Any]:
    a, b = item.replies[0], item.replies[1]
    choice = label.payload["choice"]
    if choice == "tie":
        return {"prompt": item.prompt, "chosen": a, "rejected": b, "tie": True, "strength": 0.5}
    chosen, rejected = (a, b) if choice == "a" else (b, a)
    strength = STRENGTH[int(label.payload["strength"])]
    return {"prompt": item.prompt, "chosen": chosen, "rejected": rejected, "tie": False, "strength": strength}


def _rated_pairs(
    item: StoredItem, label: StoredLabel, ratings: Sequence[Any], score: Sequence[float]
) -> Iterator[dict[str, Any]]:
    replies = item.replies
    for i in range(len(replies)):
        for j in range(i + 1, len(replies)):
            first, second = (j, i) if score[j] > score[i] else (i, j)
            yield {
                "prompt": item.prompt,
                "chosen": replies[first],
                "rejected": replies[second],
                "tie": score[i] == score[j],
                "chosen_rating": ratings[first],
                "rejected_rating": ratings[second],
                **_common(item, label),
            }


def label_rows(kind: str, item: StoredItem, label: StoredLabel, attributes: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rewardlab records one label states (none for a skip)."""
    if label.skipped:
        return []
    if kind == "pairwise":
        return [{**_pairwise(item, label), **_common(item, label)}]
    if kind == "ranking":
        order = [int(i) for i in label.payload["order"]]
        return [{"prompt": item.prompt, "responses": list(item.replies), "ranking": order, **_common(item, label)}]
    if kind == "rating":
        ratings = [float(r) for r in label.payload["ratings"]]
        return list(_rated_pairs(item, label, ratings, ratings))
    if kind == "attributes":
        per_reply = [[float(label.payload["ratings"][a][i]) for a in attributes] for i in range(len(item.replies))]
        means = [sum(r) / len(r) for r in per_reply]
        return [{**row, "attributes": list(attributes)} for row in _rated_pairs(item, label, per_reply, means)]
    raise ValueError(f"kind: {kind!r} is not pairwise, ranking, rating or attributes")


def export_rows(store: Store, kind: str, attributes: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every stored label (in the order written) as rewardlab records."""
    items = {item.id: item for item in store.items()}
    return [row for label in store.labels() for row in label_rows(kind, items[label.item_id], label, attributes)]


def export_labels(store: Store, kind: str, output: str | Path, attributes: Sequence[str] = ()) -> int:
    """Write the records to ``output`` (JSONL, atomically: a reader sees the old file or the whole new one);
    returns how many rows were written."""
    rows = export_rows(store, kind, attributes)
    write_jsonl(output, rows)
    return len(rows)
