"""The dashboard's learning curve says what its x axis counts.

Found on the screenshots of a real run (issue 30, `benchmarks/collect_simulated_annotator.py`): the
card read "200 labels" while the curve, labelled "labels", ended at 159. The curve's x is the number of
labels trained on (``BackgroundTrainer``'s ``RetrainOutput.n_labels``), which leaves out the held-out
random picks the accuracy is measured on, so the axis must say so.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_collect_app import client_for, make_project


def test_the_curve_axis_counts_labels_trained_on(tmp_path: Path) -> None:
    """20 labels trained on, 5 held out: the axis ends at 20 and names what it counts."""
    project, store, owner = make_project(tmp_path / "p")
    store.add_metric(20, 0.8, 5)
    page = client_for(project, store, owner).get("/dashboard").text
    store.close()
    ticks = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">(\d+)</text>', page)
    assert ticks == ["0", "10", "20"]
    assert re.search(r">labels trained on \(held-out random picks not counted\)</text>", page)
