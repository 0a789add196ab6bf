"""Evaluation reports as JSON (for programs), Markdown and HTML with plots (for people).

An evaluation writes ``eval.json`` (every number, the trivial baselines and the headline warnings),
``eval.md`` (the same for people: warnings first), ``eval.html`` (the page with plots and the most
confidently wrong pairs) and ``predictions.jsonl`` (one row per pair, ``predictions.py``).
A report is written as one unit: every file is rendered first, then all are written together, so a
failure (a plot that cannot be drawn, a full disk) leaves the previous report whole, never new
numbers beside an old page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rewardlab.data.records import PreferencePair
from rewardlab.destinations import write_report_files
from rewardlab.evaluate.compare import ModelComparison
from rewardlab.evaluate.ensemble_errors import EnsembleErrors, render_ensemble_errors_markdown
from rewardlab.evaluate.eval_markdown import eval_payload, render_markdown, results_markdown
from rewardlab.evaluate.pairwise import PairwiseEval
from rewardlab.evaluate.predictions import prediction_rows, predictions_jsonl

__all__ = [
    "eval_payload",
    "render_comparison_markdown",
    "render_markdown",
    "results_markdown",
    "write_comparison_report",
    "write_report",
]


def write_report(
    result: PairwiseEval,
    directory: str | Path,
    model: str,
    data: str,
    pairs: Sequence[PreferencePair] | None = None,
) -> tuple[Path, Path, Path, Path]:
    """``eval.json``, ``eval.md``, ``eval.html`` (the same numbers with plots) and ``predictions.jsonl``
    (one row per pair; with text excerpts when ``pairs``, the evaluated pairs, are given), written as one unit."""
    from rewardlab.evaluate.html_report import render_html  # matplotlib loads only when a report is written

    directory = Path(directory)
    payload = eval_payload(result, model, data)
    rows = prediction_rows(result, pairs)
    files = {
        directory / "eval.json": json.dumps(payload, indent=2) + "\n",
        directory / "eval.md": render_markdown(result, model, data),
        directory / "eval.html": render_html(result, model, data, rows=rows),
        directory / "predictions.jsonl": predictions_jsonl(rows),
    }
    write_report_files(directory, files)
    json_path, md_path, html_path, predictions_path = files
    return json_path, md_path, html_path, predictions_path


def render_comparison_markdown(comparison: ModelComparison, model_a: str, model_b: str, data: str) -> str:
    p = comparison.paired
    level = f"{100 * (1 - p.alpha):g} %"
    lines = [
        "# Reward model comparison",
        "",
        f"- A: `{model_a}`",
        f"- B: `{model_b}`",
        f"- data: `{data}` ({p.n} pairs with a labelled order)",
        "",
        "| model | accuracy | 95 % CI | n |",
        "|---|---|---|---|",
    ]
    for name, e in (("A", comparison.a.overall), ("B", comparison.b.overall)):
        lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
    lines += [
        "",
        f"- accuracy difference A − B: **{p.difference:+.4f}** "
        f"({level} paired bootstrap CI {p.ci_low:+.4f} – {p.ci_high:+.4f})",
        f"- McNemar exact p = {p.mcnemar_p:.4g} (A right and B wrong: {p.a_only}; B right and A wrong: {p.b_only}; "
        f"both right: {p.both_right}; both wrong: {p.both_wrong}; a tie in score, left out of McNemar: {p.half_right})",
        f"- verdict: **{p.verdict}** (a winner is named only when McNemar and the interval agree)",
        f"- STARC distance between the two rewards: {comparison.starc_distance:.4f} "
        "(0 = the same up to scale and per-prompt shifts, 1 = opposite)"
        if comparison.starc_distance is not None
        else f"- STARC distance between the two rewards: not defined ({comparison.starc_undefined})",
    ]
    return "\n".join(lines) + "\n"


def write_comparison_report(
    comparison: ModelComparison, directory: str | Path, model_a: str, model_b: str, data: str
) -> tuple[Path, Path]:
    """``compare.json`` and ``compare.md``, written as one unit."""
    directory = Path(directory)
    payload = {"model_a": model_a, "model_b": model_b, "data": data, **comparison.to_dict()}
    json_path, md_path = directory / "compare.json", directory / "compare.md"
    files = {
        json_path: json.dumps(payload, indent=2) + "\n",
        md_path: render_comparison_markdown(comparison, model_a, model_b, data),
    }
    write_report_files(directory, files)
    return json_path, md_path


def write_ensemble_errors_report(
    result: EnsembleErrors, directory: str | Path, members: list[str], data: str
) -> tuple[Path, Path]:
    """``ensemble_errors.json`` and ``ensemble_errors.md``, written as one unit."""
    directory = Path(directory)
    payload = {"members": members, "data": data, **result.to_dict()}
    json_path, md_path = directory / "ensemble_errors.json", directory / "ensemble_errors.md"
    files = {
        json_path: json.dumps(payload, indent=2) + "\n",
        md_path: render_ensemble_errors_markdown(result, members, data),
    }
    write_report_files(directory, files)
    return json_path, md_path
