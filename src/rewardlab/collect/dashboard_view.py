"""The owner's dashboard as the page shows it: the statistics of ``collect.stats`` and the learning
curve drawn as an SVG polyline, computed here on the server (no chart library, no script)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewardlab.collect import stats

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 624, 12, 228


def dashboard_data(store: Any, config: Any) -> dict[str, Any]:
    """``stats.dashboard`` of everything in ``store``: the JSON of ``/dashboard/data.json``."""
    data = stats.dashboard(store.labels(), store.item_count(), store.metrics(), kind=config.kind)
    curve = data.get("learning_curve") or []
    data["heldout_n"] = curve[-1]["heldout_n"] if curve else 0
    data["selection_mode"] = config.selection
    return data


def curve_svg(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Coordinates of held-out accuracy (y, 0 to 1) against labels (x, 0 to the most labels) in a
    ``WIDTH`` × ``HEIGHT`` view box; None without any row."""
    rows = [row for row in rows if row.get("heldout_accuracy") is not None]
    if not rows:
        return None
    most = max(max(int(row["n_labels"]) for row in rows), 1)

    def x(n: float) -> float:
        return round(LEFT + (RIGHT - LEFT) * n / most, 1)

    def y(accuracy: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * min(max(accuracy, 0.0), 1.0), 1)

    dots = [
        {
            "x": x(row["n_labels"]),
            "y": y(row["heldout_accuracy"]),
            "title": f"{row['n_labels']} labels: {row['heldout_accuracy']:.1%} on {row.get('heldout_n', 0)} held out",
        }
        for row in rows
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": RIGHT,
        "top": TOP,
        "bottom": BOTTOM,
        "points": " ".join(f"{dot['x']},{dot['y']}" for dot in dots),
        "dots": dots,
        "y_ticks": [{"y": y(a), "text": f"{a:.0%}"} for a in (0.0, 0.25, 0.5, 0.75, 1.0)],
        "x_ticks": [{"x": x(n), "text": str(n)} for n in sorted({0, most // 2, most})],
    }
