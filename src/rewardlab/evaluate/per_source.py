"""Accuracy per data source, when the evaluated pairs came from several (``runs/sources.py``).

A model trained on a mix of sources can be good on the large one and at chance on the others; the
pooled accuracy hides that. So each source gets its own accuracy with a Wilson interval, and the
mean over sources weighs every source alike, whatever its number of test pairs. Each source also gets
the expected calibration error of σ(r_c − r_r) on its own pairs: a mix of sources whose annotators
prefer different things can leave the model well calibrated on the pool and not on one source
(Zeng et al. 2023, "On Diversified Preferences of Large Language Model Alignment").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.data.source_names import source_name
from rewardlab.evaluate.calibration import expected_calibration_error, preference_probabilities
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate


@dataclass
class PerSourceOutput:
    per_source: dict[str, AccuracyEstimate]
    """Accuracy (1, 1/2 or 0 a pair) with its 95 % Wilson interval, by source, in the order first met."""
    mean_accuracy: float
    """The unweighted mean of the sources' accuracies (each source counts once)."""
    ece: dict[str, float] = field(default_factory=dict)
    """Expected calibration error of σ(r_c − r_r) (10 bins, ``calibration.py``) by source, over the same
    pairs as its accuracy (its ``n``); empty when no scores were given."""


def per_source_accuracy(
    pairs: Sequence[PreferencePair],
    correct: Sequence[float],
    ordered: Sequence[bool],
    scores: tuple[Sequence[float], Sequence[float]] | None = None,
) -> PerSourceOutput | None:
    """Accuracy by source over the pairs with a labelled order; None when no pair names its source.

    ``correct`` holds each pair's correctness (``metrics.pairwise_correct``) and ``ordered`` whether
    it has a labelled order (tie-labelled pairs are left out, as from the overall accuracy). ``scores``,
    each pair's (chosen, rejected) rewards, adds each source's ECE.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (pair, keep) in enumerate(zip(pairs, ordered, strict=True)):
        name = source_name(pair)
        if keep and name is not None:
            groups[name].append(i)
    if not groups:
        return None
    values = np.asarray(correct, dtype=float)
    per_source = {name: estimate(values[rows]) for name, rows in groups.items()}
    ece = {}
    if scores is not None:
        chosen, rejected = np.asarray(scores[0], dtype=float), np.asarray(scores[1], dtype=float)
        ece = {
            name: expected_calibration_error(preference_probabilities(chosen[rows], rejected[rows]))
            for name, rows in groups.items()
        }
    return PerSourceOutput(per_source, float(np.mean([e.accuracy for e in per_source.values()])), ece)


def per_source_lines(output: PerSourceOutput) -> list[str]:
    """The Markdown table of ``output``, its last row the mean over sources."""
    if not output.ece:
        lines = ["", "### Per source", "", "| source | accuracy | 95 % Wilson CI | n |", "|---|---|---|---|"]
        for name, e in output.per_source.items():
            lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
        lines.append(f"| mean over {len(output.per_source)} sources | {output.mean_accuracy:.4f} | | |")
        return lines
    lines = ["", "### Per source", "", "| source | accuracy | 95 % Wilson CI | ECE | n |", "|---|---|---|---|---|"]
    for name, e in output.per_source.items():
        lines.append(
            f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {output.ece[name]:.4f} | {e.n} |"
        )
    mean_ece = float(np.mean(list(output.ece.values())))
    lines.append(f"| mean over {len(output.per_source)} sources | {output.mean_accuracy:.4f} | | {mean_ece:.4f} | |")
    return lines
