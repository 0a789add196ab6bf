"""The cross-dataset matrix: how a reward trained on one source ranks the held-out pairs of every source.

A row is one reward (a reward model, or a DPO policy's implicit reward) and the source it was trained
on; a column is a source's test split. The diagonal cell (trained and tested on the same source) is
in-distribution; the others measure how the reward generalises to a shift in prompts, replies and
annotators, which is the study of Lin et al. 2024, "On the Limited Generalization Capability of the
Implicit Reward Model Induced by Direct Preference Optimization" (DPORM vs EXRM; only the abstract is
known here: the explicit reward model's accuracy drops less off-distribution than DPO's implicit one).

Each cell is an accuracy with its Wilson 95 % interval (``metrics.wilson_interval``; a pair scored
as a tie counts 1/2). Each row's off-diagonal mean is the unweighted mean of its off-diagonal cells'
accuracies: every other source counts once, however many test pairs it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardlab.evaluate.metrics import wilson_interval


@dataclass(frozen=True)
class MatrixRow:
    """One reward of the matrix: its label (``ultrafeedback``, ``dpo:ultrafeedback``) and training source."""

    label: str
    trained_on: str
    kind: str = "reward-model"
    """``reward-model`` (EXRM) or ``dpo-implicit`` (DPORM: β·log π/π_ref of a DPO policy)."""


@dataclass(frozen=True)
class MatrixCell:
    """Pairs of ``column``'s test split ranked right by the reward of row ``row``: ``correct`` of ``n``."""

    row: str
    column: str
    correct: float
    n: int


def matrix_summary(rows: Sequence[MatrixRow], columns: Sequence[str], cells: Sequence[MatrixCell]) -> dict[str, Any]:
    """Every cell's accuracy and Wilson interval, which cells are in-distribution, and each row's
    in-distribution accuracy and off-diagonal mean (None when the row has no such cell)."""
    by_key = {(cell.row, cell.column): cell for cell in cells}
    missing = [f"{r.label}/{c}" for r in rows for c in columns if (r.label, c) not in by_key]
    if missing:
        raise ValueError(f"the matrix has no cell for {', '.join(missing)}")
    table: dict[str, dict[str, dict[str, Any]]] = {}
    summary_rows = []
    for row in rows:
        table[row.label] = {}
        for column in columns:
            cell = by_key[(row.label, column)]
            low, high = wilson_interval(cell.correct, cell.n)
            table[row.label][column] = {
                "accuracy": cell.correct / cell.n if cell.n else math.nan,
                "ci_low": low,
                "ci_high": high,
                "n": cell.n,
                "correct": cell.correct,
                "in_distribution": column == row.trained_on,
            }
        off = [v["accuracy"] for c, v in table[row.label].items() if c != row.trained_on]
        own = table[row.label].get(row.trained_on)
        summary_rows.append(
            {
                "label": row.label,
                "trained_on": row.trained_on,
                "kind": row.kind,
                "in_distribution": own["accuracy"] if own else None,
                "off_diagonal_mean": sum(off) / len(off) if off else None,
            }
        )
    return {"columns": list(columns), "rows": summary_rows, "cells": table}


def render_matrix(summary: dict[str, Any]) -> str:
    """The matrix as a Markdown table: a row per reward, a column per test split, the in-distribution
    cell in bold, and the off-diagonal mean last."""
    columns = summary["columns"]
    lines = [
        "| trained on ↓ / tested on → | " + " | ".join(columns) + " | off-diagonal mean |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for row in summary["rows"]:
        cells = []
        for column in columns:
            v = summary["cells"][row["label"]][column]
            text = f"{v['accuracy']:.3f} ({v['ci_low']:.3f}–{v['ci_high']:.3f}, n={v['n']})"
            cells.append(f"**{text}**" if v["in_distribution"] else text)
        mean = row["off_diagonal_mean"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {'—' if mean is None else f'{mean:.3f}'} |")
    return "\n".join(lines) + "\n"


def render_report(summary: dict[str, Any], settings: dict[str, Any]) -> str:
    """``cross_dataset.md``: what was run, then the matrix."""
    lines = [
        "# Cross-dataset matrix",
        "",
        "Each row is a reward trained on one source's training split; each column a source's test split "
        "(the same seeded split for every row). Cells: pairwise accuracy, Wilson 95 % interval, test pairs; "
        "bold: in-distribution. Off-diagonal mean: unweighted mean over the other sources.",
        "",
        f"Sources: {', '.join(f'{s} ({p})' for s, p in settings['sources'].items())}",
        f"Reward-model overrides: {' '.join(settings['overrides']) or 'none'}",
    ]
    if settings.get("dpo"):
        lines.append(
            f"DPO rows (dpo:SOURCE): implicit reward β·(log π − log π_ref), overrides: "
            f"{' '.join(settings['dpo_overrides']) or 'none'}"
        )
    return "\n".join(lines) + "\n\n" + render_matrix(summary)
