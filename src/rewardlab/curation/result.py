"""One curation's outcome: the decisions, the rows written (every original field plus provenance), the counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.curation.curate import ACTIONS, Decision
from rewardlab.curation.rows import SourceRow, SourceRows, flipped_row
from rewardlab.data.schema import ColumnMap

PROVENANCE = ("original_label", "strength", "strength_mean", "strength_std", "action")
"""Fields every curated row gets; a row that already has them (a curated file curated again) keeps
the earlier ones under ``previous_curation``."""


@dataclass
class CurationOutput:
    data: str
    method: str
    models: list[str]
    threshold: float
    source: SourceRows
    decisions: list[Decision]
    curated: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    agreement: np.ndarray | None = None
    """Per pair, the share of ensemble members on the majority's side (None for peer review)."""
    files: list[Path] = field(default_factory=list)

    @property
    def flagged(self) -> list[int]:
        """Indices (in the data's order) of the pairs flipped or dropped."""
        return [i for i, d in enumerate(self.decisions) if d.flagged]

    def counts(self) -> dict[str, Any]:
        actions = Counter(d.action for d in self.decisions)
        by_subset: dict[str, Counter] = defaultdict(Counter)
        for r, d in zip(self.source.rows, self.decisions, strict=True):
            by_subset[r.pair.subset or "(none)"][d.action] += 1
        return {
            "data": self.data,
            "method": self.method,
            "models": self.models,
            "threshold": self.threshold,
            "pairs": len(self.decisions),
            **{a: actions.get(a, 0) for a in ACTIONS},
            "unreadable_rows": len(self.source.skipped),
            "written": len(self.curated),
            "written_dropped": len(self.dropped),
            "by_subset": {s: {a: c.get(a, 0) for a in ACTIONS} for s, c in sorted(by_subset.items())},
        }

    def summary_line(self) -> str:
        c = self.counts()
        line = (
            f"{c['pairs']} pairs: {c['kept']} kept, {c['flipped']} flipped, {c['softened']} softened, "
            f"{c['dropped']} dropped; {c['written']} written"
        )
        return line + (f", {c['unreadable_rows']} unreadable rows skipped" if c["unreadable_rows"] else "")


def curated_row(source: SourceRow, decision: Decision, columns: ColumnMap) -> dict[str, Any]:
    """The original row (reversed if the decision says so) with the provenance fields added."""
    row = flipped_row(source.row, columns, source.location) if decision.reversed else dict(source.row)
    if "action" in row:  # curated before: keep that curation's provenance
        row["previous_curation"] = {k: row.pop(k) for k in PROVENANCE if k in row}
    elif columns.strength in row:
        row["original_strength"] = row.pop(columns.strength)
    row["original_label"] = 0.5 if source.pair.tie else (0.0 if decision.reversed else 1.0)
    if decision.strength is not None:
        row["strength"] = round(decision.strength, 6)
    row["strength_mean"] = decision.mean
    row["strength_std"] = decision.std
    row["action"] = decision.action
    return row
