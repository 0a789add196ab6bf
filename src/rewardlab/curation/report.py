"""What a curation changed, as ``curation.md`` and a self-contained ``curation.html`` (plots as PNGs).

The page shows the strength histogram (the judge's mean margin μ for each label as given, by what
was done to the pair), the flipped and dropped counts by subset, how far the ensemble's members
agreed, and ``EXAMPLES`` flagged pairs a person can read (the most strongly doubted first), so a
user sees what was flipped or removed before training on it. Text from the data is escaped
(``evaluate.markdown_html``) and drawn literally in the plots.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from rewardlab.curation.result import CurationOutput
from rewardlab.destinations import write_report_files
from rewardlab.evaluate.html_report import figure_png
from rewardlab.evaluate.markdown_html import markdown_to_html

EXAMPLES = 20
EXCERPT = 300
COLOURS = {"kept": "#1f77b4", "flipped": "#d62728", "dropped": "#7f7f7f", "softened": "#2ca02c"}


def strength_png(result: CurationOutput) -> str:
    means = np.array([d.mean for d in result.decisions])

    def draw(ax: Axes) -> None:
        bins = np.histogram_bin_edges(means, bins=30)
        for action, colour in COLOURS.items():
            values = [d.mean for d in result.decisions if d.action == action]
            if values:
                ax.hist(values, bins=bins, color=colour, alpha=0.7, label=f"{action} ({len(values)})")
        ax.axvline(-result.threshold, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("strength μ (mean margin of the label as given)")
        ax.set_ylabel("pairs")
        ax.legend()

    return figure_png(draw, (6.0, 3.6))


def agreement_png(agreement: np.ndarray) -> str:
    def draw(ax: Axes) -> None:
        values, counts = np.unique(np.round(agreement, 3), return_counts=True)
        ax.bar([f"{v:.2f}" for v in values], counts, color="#1f77b4")
        ax.set_xlabel("share of members on the majority's side")
        ax.set_ylabel("pairs")

    return figure_png(draw, (6.0, 3.6))


def _excerpt(text: object) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= EXCERPT else "…" + flat[-EXCERPT:]


def examples(result: CurationOutput, n: int = EXAMPLES) -> list[tuple[str, str, str, str, str, float]]:
    """(location, action, prompt, label's chosen, label's rejected, μ) of the ``n`` most doubted flagged
    pairs (all pairs by μ when the method flags none, as ``soft`` does)."""
    flagged = result.flagged or list(range(len(result.decisions)))
    order = sorted(flagged, key=lambda i: result.decisions[i].mean)[:n]
    out = []
    for i in order:
        pair, d = result.source.rows[i].pair, result.decisions[i]
        prompt = pair.prompt if isinstance(pair.prompt, str) else " / ".join(m["content"] for m in pair.prompt)
        out.append((result.source.rows[i].location, d.action, prompt, pair.chosen, pair.rejected, d.mean))
    return out


def render_markdown(result: CurationOutput) -> str:
    c = result.counts()
    lines = [
        "# What curation changed",
        "",
        f"- data: `{result.data}`; method **{result.method}**, threshold {result.threshold:g}"
        " (flagged: μ < −threshold)",
        f"- judged by: {', '.join(f'`{m}`' for m in result.models)}",
        f"- {result.summary_line()}",
    ]
    if result.agreement is not None:
        unanimous = float((result.agreement == 1).mean())
        lines.append(f"- members unanimous on the label's side: {unanimous:.3f} of the pairs")
    lines += ["", "| subset | kept | flipped | dropped | softened |", "|---|---|---|---|---|"]
    for subset, counts in c["by_subset"].items():
        cells = " | ".join(str(counts[a]) for a in ("kept", "flipped", "dropped", "softened"))
        lines.append(f"| {subset} | {cells} |")
    lines += ["", "## Flagged pairs (most doubted first)", ""]
    for location, action, prompt, chosen, rejected, mean in examples(result):
        lines += [
            f"- `{location}` **{action}**, μ = {mean:.3f}",
            f"- prompt: {_excerpt(prompt)}",
            f"- labelled better: {_excerpt(chosen)}",
            f"- labelled worse: {_excerpt(rejected)}",
        ]
    return "\n".join(lines) + "\n"


def render_html(result: CurationOutput, markdown: str) -> str:
    figures = [("Strength of each label, by action", strength_png(result))]
    if result.agreement is not None:
        figures.append(("Agreement among the ensemble's members", agreement_png(result.agreement)))
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(t)}'
        "</figcaption></figure>"
        for t, png in figures
    )
    style = "body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}img{max-width:100%}"
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>Curation</title><style>{style}</style></head><body>{images}{markdown_to_html(markdown)}</body></html>\n"
    )


def write_curation_report(result: CurationOutput, directory: str | Path) -> list[Path]:
    """``curation.md`` and ``curation.html`` in ``directory``, written as one unit."""
    directory = Path(directory)
    markdown = render_markdown(result)
    files = {directory / "curation.md": markdown, directory / "curation.html": render_html(result, markdown)}
    write_report_files(directory, files)
    return list(files)
