"""Retraining while annotators work: a daemon thread refits the ensemble as labels arrive, gives the
selector new scores and records the held-out accuracy (the dashboard's learning curve).

A request never waits for it: the app calls :meth:`BackgroundTrainer.notify` after each new label,
which only sets an event; the thread wakes, and retrains once ``retrain_every`` labels have arrived
since the last fit. A retraining reads the labels, embeds items not yet embedded (``features.py``),
fits a :class:`~rewardlab.collect.ensemble.FeatureEnsemble`, scores every item that still needs
labels and swaps the scores into the selector in one step. A failure is logged and the thread waits
for the next label: it never takes the server down.

**Held-out accuracy, and why it is unbiased.** Under active selection the labels whose ``selection``
is ``"random"`` (the selector's ``random_share``, picked uniformly among the candidates) are never
trained on; the accuracy of the ensemble's mean prediction on their pairs therefore estimates its
accuracy on a uniformly drawn item, not on the hard items active selection seeks out. In random order
every label is a uniform pick, so the held-out ones are instead those whose item key falls in the
first ``random_share`` of the hash range (``store.overlap_rank`` style: fixed per item, independent of
the labels). Ties (target ½) have no right side and count in neither direction.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.collect.active import ActiveSelector, item_scores
from rewardlab.collect.ensemble import FeatureEnsemble
from rewardlab.collect.export import STRENGTH
from rewardlab.collect.features import FeatureCache
from rewardlab.collect.store import Store, StoredItem, StoredLabel

log = logging.getLogger(__name__)

MIN_TRAINING_PAIRS = 2
"""Fewer ordered training pairs than this and there is nothing to fit yet."""


def label_pairs(
    kind: str, payload: dict[str, Any], replies: int, attributes: Sequence[str] = ()
) -> list[tuple[int, int, float]]:
    """The reply pairs (i, j, P(i ≻ j)) one label states, as ``export.py`` writes them: pairwise one pair
    (strength → probability by ``export.STRENGTH``, a tie ½); a ranking its k(k−1)/2 implied pairs;
    ratings every pair, the higher (mean) rating preferred, equal ratings a tie."""
    if kind == "pairwise":
        choice = payload["choice"]
        if choice == "tie":
            return [(0, 1, 0.5)]
        strength = STRENGTH[int(payload["strength"])]
        return [(0, 1, strength if choice == "a" else 1 - strength)]
    if kind == "ranking":
        order = [int(i) for i in payload["order"]]
        return [(order[a], order[b], 1.0) for a in range(len(order)) for b in range(a + 1, len(order))]
    if kind == "rating":
        score = [float(r) for r in payload["ratings"]]
    elif kind == "attributes":
        score = [float(np.mean([payload["ratings"][a][i] for a in attributes])) for i in range(replies)]
    else:
        raise ValueError(f"kind: {kind!r} is not pairwise, ranking, rating or attributes")
    return [
        (i, j, 1.0 if score[i] > score[j] else 0.0 if score[i] < score[j] else 0.5)
        for i in range(replies)
        for j in range(i + 1, replies)
    ]


def key_share(key: str) -> float:
    """A number in [0, 1) fixed by an item's key: its place in the sha256 hash range."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / 16**12


@dataclass(frozen=True)
class RetrainOutput:
    n_labels: int
    """Labels trained on (held-out and skipped ones not counted): the learning curve's x."""
    heldout_accuracy: float | None
    heldout_n: int
    """Ordered held-out pairs the accuracy is over."""
    scored_items: int


class BackgroundTrainer:
    """Refit the ensemble of ``project`` on ``store``'s labels in a daemon thread; see the module docstring.

    ``features`` defaults to the project's cache (``PROJECT/features.safetensors``, its ``encoder``).
    """

    def __init__(
        self, project: Any, store: Store, selector: Any, features: FeatureCache | None = None, *, l2: float = 1.0
    ) -> None:
        self.config = project.config
        self.store = store
        self.selector = selector
        self.features = (
            features
            if features is not None
            else FeatureCache(project.features_path, self.config.encoder, max_length=self.config.encoder_max_length)
        )
        self.l2 = l2
        self.retrain_every = int(self.config.retrain_every)
        self.fits = 0
        self.last: RetrainOutput | None = None
        self._trained_at: int | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; it looks at the labels at once (a restarted server has scores again)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="rewardlab-collect-trainer", daemon=True)
        self._thread.start()
        self._wake.set()

    def notify(self) -> None:
        """A new label arrived; returns at once."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (a fit under way finishes first)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.maybe_retrain()
            except Exception:  # a bad fit must not take the server down; the next label tries again
                log.exception("collect: retraining the active-selection ensemble failed")

    def maybe_retrain(self) -> RetrainOutput | None:
        """Retrain when ``retrain_every`` labels arrived since the last fit (or at start with any labels)."""
        count = self.store.label_count()
        due = count > 0 if self._trained_at is None else count - self._trained_at >= self.retrain_every
        if not due:
            return None
        result = self.retrain()
        self._trained_at = count
        return result

    def retrain(self) -> RetrainOutput | None:
        """One fit on every label now stored; None when there are too few ordered pairs to fit."""
        items = {item.id: item for item in self.store.items()}
        labels = [label for label in self.store.labels() if not label.skipped and label.item_id in items]
        features = self.features.features(list(items.values()))
        train, heldout = self._split(labels, items)
        diffs, targets = self._pairs(train, items, features)
        if int(np.sum(targets != 0.5)) < MIN_TRAINING_PAIRS:
            return None
        ensemble = FeatureEnsemble(self.config.members, self.l2, seed=self.fits).fit(diffs, targets)
        self.fits += 1
        scores = self._scores(ensemble, items, labels, features)
        self.selector.update(scores)
        accuracy, n = self._accuracy(ensemble, heldout, items, features)
        self.store.add_metric(len(train), accuracy, n)
        self.last = RetrainOutput(len(train), accuracy, n, len(scores))
        return self.last

    def _split(
        self, labels: list[StoredLabel], items: dict[int, StoredItem]
    ) -> tuple[list[StoredLabel], list[StoredLabel]]:
        share = float(self.config.random_share)
        if isinstance(self.selector, ActiveSelector):
            held = [label.selection == "random" for label in labels]
        else:
            held = [key_share(items[label.item_id].key) < share for label in labels]
        pairs = list(zip(labels, held, strict=True))
        return [x for x, h in pairs if not h], [x for x, h in pairs if h]

    def _pairs(
        self, labels: list[StoredLabel], items: dict[int, StoredItem], features: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        rows, targets = [], []
        for label in labels:
            item = items[label.item_id]
            phi = features[item.key]
            for i, j, target in label_pairs(self.config.kind, label.payload, len(item.replies), self.config.attributes):
                rows.append(phi[i] - phi[j])
                targets.append(target)
        width = next(iter(features.values())).shape[1] if features else 0
        return np.asarray(rows, dtype=np.float64).reshape(-1, width), np.asarray(targets, dtype=np.float64)

    def _scores(
        self,
        ensemble: FeatureEnsemble,
        items: dict[int, StoredItem],
        labels: list[StoredLabel],
        features: dict[str, np.ndarray],
    ) -> dict[int, float]:
        """Informativeness of every item with fewer than ``labels_per_item`` labels (summed over its reply pairs)."""
        counts: dict[int, int] = {}
        for label in labels:
            counts[label.item_id] = counts.get(label.item_id, 0) + 1
        open_items = [item for item in items.values() if counts.get(item.id, 0) < self.config.labels_per_item]
        diffs, owners = [], []
        for item in open_items:
            phi = features[item.key]
            for i in range(len(item.replies)):
                for j in range(i + 1, len(item.replies)):
                    diffs.append(phi[i] - phi[j])
                    owners.append(item.id)
        if not diffs:
            return {}
        strategy = getattr(self.selector, "strategy", "disagreement")
        return item_scores(ensemble.predict(np.stack(diffs)), owners, strategy)

    def _accuracy(
        self,
        ensemble: FeatureEnsemble,
        heldout: list[StoredLabel],
        items: dict[int, StoredItem],
        features: dict[str, np.ndarray],
    ) -> tuple[float | None, int]:
        diffs, targets = self._pairs(heldout, items, features)
        ordered = targets != 0.5
        if not ordered.any():
            return None, 0
        mean = ensemble.predict(diffs[ordered]).mean(axis=0)
        correct = (mean > 0.5) == (targets[ordered] > 0.5)
        return float(correct.mean()), int(ordered.sum())
