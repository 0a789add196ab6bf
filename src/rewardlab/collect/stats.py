"""The owner's dashboard as numbers: who labelled how much, how fast, how consistently, what is left.

Pure functions of the stored labels and metrics; :func:`dashboard` returns a JSON-able dict that the
web app serves at ``/dashboard/data.json`` and renders on ``/dashboard``.

Time per label is ``created_at - shown_at`` (the page was rendered at ``shown_at``), over the labels
answered here: imported labels (``selection`` ``imported``) are left out of the times, as are times
that are not positive.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from rewardlab.collect.agreement import agreement, infer_kind
from rewardlab.collect.interop import IMPORTED


class TimedLabel(Protocol):
    """What the dashboard reads from a stored label (``collect.store.StoredLabel`` has these fields)."""

    item_id: int
    annotator: str
    payload: dict
    skipped: bool
    shown_at: float
    created_at: float
    selection: str


def labels_per_annotator(labels: Sequence[TimedLabel]) -> dict[str, int]:
    """Answered (not skipped) labels per annotator, most first."""
    counts = Counter(label.annotator for label in labels if not label.skipped)
    return dict(counts.most_common())


def skipped_per_annotator(labels: Sequence[TimedLabel]) -> dict[str, int]:
    """Skipped items per annotator (only annotators who skipped something)."""
    counts = Counter(label.annotator for label in labels if label.skipped)
    return dict(counts.most_common())


def seconds_per_label(labels: Sequence[TimedLabel]) -> list[float]:
    """``created_at - shown_at`` of each label answered here (not skipped, not imported), when positive."""
    times = [label.created_at - label.shown_at for label in labels if not label.skipped and label.selection != IMPORTED]
    return [t for t in times if t > 0 and math.isfinite(t)]


def time_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Median and 90th percentile (numpy's linear interpolation between order statistics) of ``seconds``."""
    if not seconds:
        return {"n": 0, "median": None, "p90": None}
    values = np.asarray(seconds, dtype=float)
    return {"n": len(values), "median": float(np.median(values)), "p90": float(np.percentile(values, 90))}


def times_by_annotator(labels: Sequence[TimedLabel]) -> dict[str, dict[str, float | int | None]]:
    """:func:`time_summary` for each annotator with answered labels."""
    groups: dict[str, list[TimedLabel]] = defaultdict(list)
    for label in labels:
        groups[label.annotator].append(label)
    return {name: time_summary(seconds_per_label(group)) for name, group in sorted(groups.items())}


def learning_curve(metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The held-out accuracy after each retraining, as ``{"n_labels", "heldout_accuracy", "heldout_n"}``
    rows in order of ``n_labels``; rows without an accuracy (too few held-out labels yet) are dropped."""
    rows = [
        {
            "n_labels": int(m["n_labels"]),
            "heldout_accuracy": float(m["heldout_accuracy"]),
            "heldout_n": int(m["heldout_n"]),
        }
        for m in metrics
        if m.get("heldout_accuracy") is not None
    ]
    return sorted(rows, key=lambda row: row["n_labels"])


def dashboard(
    labels: Sequence[TimedLabel],
    items_total: int,
    metrics: Sequence[Mapping[str, Any]],
    kind: str | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows, JSON-able. ``kind`` defaults to what the labels' payloads say."""
    if items_total < 0:
        raise ValueError(f"items_total must be 0 or more, got {items_total}")
    kind = kind or infer_kind(labels)
    answered_items = {label.item_id for label in labels if not label.skipped}
    curve = learning_curve(metrics)
    per_annotator = labels_per_annotator(labels)
    skipped = skipped_per_annotator(labels)
    times = times_by_annotator(labels)
    names = sorted(set(per_annotator) | set(skipped), key=lambda name: (-per_annotator.get(name, 0), name))
    return {
        "kind": kind,
        "labels": sum(per_annotator.values()),
        "skipped": sum(skipped.values()),
        "items_total": items_total,
        "items_labelled": len(answered_items),
        "items_left": max(items_total - len(answered_items), 0),
        "annotators": [
            {
                "name": name,
                "labels": per_annotator.get(name, 0),
                "skipped": skipped.get(name, 0),
                "median_seconds": times[name]["median"],
                "p90_seconds": times[name]["p90"],
            }
            for name in names
        ],
        "seconds_per_label": time_summary(seconds_per_label(labels)),
        "selection": dict(Counter(label.selection for label in labels if not label.skipped)),
        "agreement": agreement(labels, kind).to_dict() if kind else None,
        "heldout_accuracy": curve[-1]["heldout_accuracy"] if curve else None,
        "learning_curve": curve,
    }
