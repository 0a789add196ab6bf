"""Agreement (Krippendorff's alpha) and the dashboard's numbers, against hand-computed and published values."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest

from rewardlab.collect.agreement import agreement, krippendorff_alpha, pairwise_value
from rewardlab.collect.items import CollectItem
from rewardlab.collect.stats import dashboard, learning_curve, seconds_per_label, time_summary
from rewardlab.collect.store import Store, StoredLabel

NAN = math.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units, values
# 1..5, missing data. The paper reports alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def label(
    item: int, annotator: str, payload: dict, *, skipped: bool = False, seconds: float = 5.0, selection: str = "active"
) -> StoredLabel:
    return StoredLabel(
        id=0, item_id=item, annotator_id=0, annotator=annotator, submission_id="", payload=payload,
        skipped=skipped, reason="", shown_at=100.0, created_at=100.0 + seconds, selection=selection,
    )  # fmt: skip


def pair(choice: str, strength: int = 0) -> dict:
    return {"choice": "tie"} if choice == "tie" else {"choice": choice, "strength": strength}


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_2011_worked_example(level: str, expected: float) -> None:
    units = {
        unit: {f"obs{i}": row[unit] for i, row in enumerate(KRIPPENDORFF_2011) if not math.isnan(row[unit])}
        for unit in range(12)
    }
    assert krippendorff_alpha(units, level) == pytest.approx(expected, abs=5e-4)


def test_pairwise_scale() -> None:
    assert [pairwise_value(pair(c, s)) for c, s in [("a", 3), ("a", 1), ("tie", 0), ("b", 2)]] == [3, 1, 0, -2]
    with pytest.raises(ValueError, match='field "choice"'):
        pairwise_value({"choice": "left"})


def test_pairwise_hand_computed() -> None:
    """Item 1: both +2; item 2: +2 and -2. Values {2, 2, 2, -2}, n = 4. Ordinal distance between -2 and 2
    on the -3..3 scale: (n_-2 + n_-1 + n_0 + n_1 + n_2 - (n_-2 + n_2)/2)² = (4 - 2)² = 4.
    D_o = (1/4)·(4 + 4) = 2 (item 2's two ordered pairs, m_u - 1 = 1); D_e = (1/12)·(3·1·2·4) = 2;
    alpha = 1 - 2/2 = 0. The same side was chosen on 1 of 2 items: 50 %."""
    labels = [
        label(1, "x", pair("a", 2)),
        label(1, "y", pair("a", 2)),
        label(2, "x", pair("a", 2)),
        label(2, "y", pair("b", 2)),
    ]
    out = agreement(labels, "pairwise")
    assert out.alpha == pytest.approx(0.0, abs=1e-12)
    assert out.percent_agreement == 0.5
    assert (out.items, out.annotators, out.units, out.annotator_pairs, out.level) == (2, 2, 2, 2, "ordinal")


def test_rating_hand_computed() -> None:
    """Units are (item, reply). Item 1: x [1, 3], y [1, 3]; item 2: x [3, 1], y [1, 3]. Values: four 1s,
    four 3s, n = 8. D_o = (1/8)·(0 + 0 + 2·4 + 2·4) = 2; D_e = (1/56)·(4·4·2·4) = 16/7;
    alpha = 1 - 2·7/16 = 1/8. Sides: item 1 both "second better", item 2 opposite: 50 %."""
    labels = [
        label(1, "x", {"ratings": [1, 3]}), label(1, "y", {"ratings": [1, 3]}),
        label(2, "x", {"ratings": [3, 1]}), label(2, "y", {"ratings": [1, 3]}),
    ]  # fmt: skip
    out = agreement(labels, "rating")
    assert out.alpha == pytest.approx(0.125, abs=1e-12)
    assert out.percent_agreement == 0.5
    assert out.level == "interval"


def test_perfect_agreement_is_one_for_every_kind() -> None:
    rng = random.Random(0)
    for kind in ("pairwise", "ranking", "rating", "attributes"):
        labels = []
        for item in range(30):
            if kind == "pairwise":
                payload = pair(*rng.choice([("a", 3), ("a", 1), ("tie", 0), ("b", 2), ("b", 3)]))
            elif kind == "ranking":
                payload = {"order": rng.sample(range(4), 4)}
            elif kind == "rating":
                payload = {"ratings": [rng.randint(1, 7) for _ in range(3)]}
            else:
                payload = {"ratings": {"help": [rng.randint(1, 7) for _ in range(2)], "harm": [rng.randint(1, 7), 4]}}
            labels += [label(item, name, payload) for name in ("x", "y", "z")]
        out = agreement(labels, kind)
        assert out.alpha == pytest.approx(1.0), kind
        assert out.percent_agreement == 1.0, kind


def test_independent_random_labels_are_near_zero() -> None:
    """Annotators answering at random agree only by chance: alpha ≈ 0 (the expectation is 0)."""
    rng = random.Random(1)
    scale = [("a", 3), ("a", 2), ("a", 1), ("tie", 0), ("b", 1), ("b", 2), ("b", 3)]
    labels = [label(item, name, pair(*rng.choice(scale))) for item in range(400) for name in ("x", "y")]
    assert abs(agreement(labels, "pairwise").alpha) < 0.06
    rankings = [label(item, name, {"order": rng.sample(range(3), 3)}) for item in range(400) for name in ("x", "y")]
    assert abs(agreement(rankings, "ranking").alpha) < 0.06


def test_alpha_falls_as_annotators_get_noisier() -> None:
    """Two annotators rate replies whose true quality is known, each adding noise: the more noise, the
    lower alpha (the property alpha is for: it measures how reproducible the labels are)."""
    rng = random.Random(2)
    truth = [[rng.uniform(1, 7) for _ in range(2)] for _ in range(300)]
    alphas = []
    for noise in (0.0, 0.5, 1.5, 4.0):
        labels = [
            label(item, name, {"ratings": [min(7, max(1, round(q + rng.gauss(0, noise)))) for q in qualities]})
            for item, qualities in enumerate(truth)
            for name in ("x", "y")
        ]
        alphas.append(agreement(labels, "rating").alpha)
    assert alphas == sorted(alphas, reverse=True)
    assert alphas[0] == pytest.approx(1.0) and alphas[-1] < 0.5


def test_only_overlapping_answered_items_count() -> None:
    """Items one annotator labelled, and skips, are left out; with no overlap alpha is None, not NaN."""
    labels = [label(1, "x", pair("a", 1)), label(2, "y", pair("b", 1)), label(2, "x", {}, skipped=True)]
    out = agreement(labels, "pairwise")
    assert (out.alpha, out.percent_agreement, out.items) == (None, None, 0)
    same = [label(1, "x", pair("a", 1)), label(1, "y", pair("a", 1))]  # one value only: alpha undefined
    assert agreement(same, "pairwise").alpha is None
    with pytest.raises(ValueError, match="kind must be one of"):
        agreement(labels, "stars")


def test_time_summary_hand_computed() -> None:
    """Times 1, 2, 3, 4, 10: median 3; p90 at rank 0.9·4 = 3.6 → 4 + 0.6·(10 - 4) = 7.6."""
    assert time_summary([10, 1, 3, 2, 4]) == {"n": 5, "median": 3.0, "p90": pytest.approx(7.6)}
    assert time_summary([]) == {"n": 0, "median": None, "p90": None}


def test_times_leave_out_skips_imports_and_non_positive() -> None:
    labels = [
        label(1, "x", pair("a", 1), seconds=2.0),
        label(2, "x", {}, skipped=True, seconds=50.0),
        label(3, "x", pair("a", 1), seconds=99.0, selection="imported"),
        label(4, "x", pair("a", 1), seconds=0.0),
    ]
    assert seconds_per_label(labels) == [2.0]


def test_learning_curve_sorted_and_without_empty_rows() -> None:
    metrics = [
        {"n_labels": 20, "heldout_accuracy": 0.7, "heldout_n": 5, "created_at": 2.0},
        {"n_labels": 10, "heldout_accuracy": None, "heldout_n": 1, "created_at": 1.0},
        {"n_labels": 15, "heldout_accuracy": 0.6, "heldout_n": 4, "created_at": 1.5},
    ]
    assert learning_curve(metrics) == [
        {"n_labels": 15, "heldout_accuracy": 0.6, "heldout_n": 4},
        {"n_labels": 20, "heldout_accuracy": 0.7, "heldout_n": 5},
    ]


def test_dashboard_from_a_real_store(tmp_path: Path) -> None:
    """Five items; ann labels 3 (2 s, 4 s, 6 s), bob labels 1 (10 s) and skips 1; two items overlap."""
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.add_items([CollectItem(f"p{i}", (f"a{i}", f"b{i}"), key=f"k{i}") for i in range(5)])
    ids = [item.id for item in store.items()]
    for name in ("ann", "bob"):
        store.add_annotator(name)
    who = {a.name: a.id for a in store.annotators()}
    rows = [
        ("ann", 0, pair("a", 3), False, 2.0, "active"),
        ("ann", 1, pair("b", 1), False, 4.0, "random"),
        ("ann", 2, pair("tie"), False, 6.0, "active"),
        ("bob", 0, pair("a", 2), False, 10.0, "random"),
        ("bob", 1, {}, True, 1.0, "active"),
    ]
    for n, (name, item, payload, skipped, seconds, selection) in enumerate(rows):
        # shown_at is back-dated so that created_at (set by the store to now) - shown_at ≈ seconds
        store.record_label(
            annotator_id=who[name], item_id=ids[item], submission_id=f"s{n}", payload=payload, skipped=skipped,
            reason="", shown_at=time.time() - seconds, selection=selection,
        )  # fmt: skip
    store.add_metric(3, None, 1)
    store.add_metric(4, 0.5, 2)
    data = dashboard(store.labels(), store.item_count(), store.metrics())
    json.dumps(data)  # JSON-able
    assert data["kind"] == "pairwise"
    assert (data["labels"], data["skipped"], data["items_labelled"], data["items_left"]) == (4, 1, 3, 2)
    assert [(a["name"], a["labels"], a["skipped"]) for a in data["annotators"]] == [("ann", 3, 0), ("bob", 1, 1)]
    assert data["annotators"][0]["median_seconds"] == pytest.approx(4.0, abs=0.5)
    assert data["seconds_per_label"]["n"] == 4
    assert data["seconds_per_label"]["median"] == pytest.approx(5.0, abs=0.5)
    assert data["selection"] == {"active": 2, "random": 2}
    assert data["agreement"]["items"] == 1 and data["agreement"]["percent_agreement"] == 1.0
    assert data["heldout_accuracy"] == 0.5
    assert data["learning_curve"] == [{"n_labels": 4, "heldout_accuracy": 0.5, "heldout_n": 2}]
    empty = dashboard([], 7, [])
    assert (empty["kind"], empty["agreement"], empty["items_left"], empty["heldout_accuracy"]) == (None, None, 7, None)
