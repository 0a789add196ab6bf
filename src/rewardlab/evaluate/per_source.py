"""Accuracy per data source, when the evaluated pairs came from several (``runs/sources.py``).

A model trained on a mix of sources can be good on the large one and at chance on the others; the
pooled accuracy hides that. So each source gets its own accuracy with a Wilson interval, and the
mean over sources weighs every source alike, whatever its number of test pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.data.source_names import source_name
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate


@dataclass
class PerSourceOutput:
    per_source: dict[str, AccuracyEstimate]
    """Accuracy (1, 1/2 or 0 a pair) with its 95 % Wilson interval, by source, in the order first met."""
    mean_accuracy: float
    """The unweighted mean of the sources' accuracies (each source counts once)."""


def per_source_accuracy(
    pairs: Sequence[PreferencePair], correct: Sequence[float], ordered: Sequence[bool]
) -> PerSourceOutput | None:
    """Accuracy by source over the pairs with a labelled order; None when no pair names its source.

    ``correct`` holds each pair's correctness (``metrics.pairwise_correct``) and ``ordered`` whether
    it has a labelled order (tie-labelled pairs are left out, as from the overall accuracy).
    """
    groups: dict[str, list[float]] = defaultdict(list)
    for pair, value, keep in zip(pairs, correct, ordered, strict=True):
        name = source_name(pair)
        if keep and name is not None:
            groups[name].append(float(value))
    if not groups:
        return None
    per_source = {name: estimate(np.asarray(values)) for name, values in groups.items()}
    return PerSourceOutput(per_source, float(np.mean([e.accuracy for e in per_source.values()])))


def per_source_lines(output: PerSourceOutput) -> list[str]:
    """The Markdown table of ``output``, its last row the mean over sources."""
    lines = ["", "### Per source", "", "| source | accuracy | 95 % Wilson CI | n |", "|---|---|---|---|"]
    for name, e in output.per_source.items():
        lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
    lines.append(f"| mean over {len(output.per_source)} sources | {output.mean_accuracy:.4f} | | |")
    return lines
