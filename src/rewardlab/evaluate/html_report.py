"""One self-contained HTML page of an evaluation: headline warnings, plots, the most confidently
wrong pairs, and the numbers of ``eval.md`` as HTML tables and lists.

The page loads nothing from outside (no scripts, fonts or style sheets; each plot is a base64 PNG
in a ``data:`` URL), so it can be mailed, attached to a pull request or opened offline. Plots are
drawn with matplotlib's Agg renderer on ``Figure`` objects (never ``pyplot``'s global state), so
reports can be written from any thread and without a display. Every piece of text from the user
(model path, data path, subset names, the texts of the wrong pairs) is HTML-escaped, and drawn
literally in the plots: a subset named ``a$b$c`` is not mathtext, and a ``text.usetex`` in the
user's matplotlibrc does not apply. The page reads on a phone as on a desktop: below 700 px the
plots stack in one column and wide tables scroll sideways.

Top of the page: the headline warnings (``headline.py``) and the model's accuracy beside the
trivial length baselines (``baselines.py``). Plots:
- reliability diagram: the top-label confidence max(p, 1 − p), p = σ((r_c − r_r) / T), against the
  fraction of pairs ordered right, per equal-width confidence bin, each bin labelled with its
  number of pairs, with the diagonal a calibrated model lies on (the binning of
  ``calibration.expected_calibration_error``); after temperature scaling too when the evaluation
  fitted a temperature;
- histogram of the margins r_c − r_r (left of 0: ordered wrong);
- histograms of the chosen and the rejected replies' rewards;
- per-subset accuracy with its 95 % Wilson interval as error bars;
- reward against reply length (characters), with Spearman's ρ in the title.

A model that compares pairs (``PairwiseEval.compares_pairs``) has no reward per reply: its page
has the reliability diagram of P(chosen ≻ rejected), the histogram of its log-odds ℓ (the margin)
and the per-subset plot, not the two plots of per-reply rewards.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.baselines import BASELINE_NAMES
from rewardlab.evaluate.calibration import ReliabilityBins, reliability_bins
from rewardlab.evaluate.eval_markdown import cross_validated_lines, eval_payload, results_markdown
from rewardlab.evaluate.markdown_html import markdown_to_html, table
from rewardlab.evaluate.pairwise import PairwiseEval
from rewardlab.evaluate.predictions import WRONG_PAIRS_SHOWN, confidently_wrong, prediction_rows

__all__ = ["ReliabilityBins", "reliability_bins", "render_html", "write_html_report"]

CHOSEN_COLOUR, REJECTED_COLOUR, ACCENT_COLOUR = "#1f77b4", "#d62728", "#2ca02c"


def figure_png(draw: Callable[[Axes], None], size: tuple[float, float] = (6.0, 4.0)) -> str:
    """Draw on a fresh figure and return it as a base64 PNG (never through LaTeX: no ``usetex``)."""
    with rc_context({"text.usetex": False}):
        figure = Figure(figsize=size, dpi=100, layout="constrained")
        draw(figure.add_subplot())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def reliability_png(result: PairwiseEval) -> str:
    chosen, rejected = _ordered_scores(result)
    curves = [("raw log-odds" if result.compares_pairs else "raw rewards", 1.0, CHOSEN_COLOUR)]
    if result.calibrated is not None:
        curves.append(
            (
                f"temperature-scaled (T = {result.calibrated.temperature:.3g})",
                result.calibrated.temperature,
                ACCENT_COLOUR,
            )
        )

    def draw(ax: Axes) -> None:
        ax.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="perfectly calibrated")
        for k, (label, temperature, colour) in enumerate(curves):
            b = reliability_bins(chosen, rejected, temperature=temperature, bins=result.calibration.bins)
            filled = b.count > 0
            ax.plot(
                b.confidence[filled], b.accuracy[filled], marker="o", color=colour, label=f"{label}, ECE {b.ece():.3f}"
            )
            for x, y, n in zip(b.confidence[filled], b.accuracy[filled], b.count[filled], strict=True):
                offset = (0, 7) if k == 0 else (0, -12)  # the raw curve's counts above, the scaled one's below
                ax.annotate(
                    f"{n}", (x, y), textcoords="offset points", xytext=offset, ha="center", fontsize=7, color=colour
                )
        p = "P(chosen ≻ rejected)" if result.compares_pairs else "σ(r_c − r_r)"
        ax.set(xlim=(0.48, 1.02), ylim=(-0.02, 1.02), xlabel=f"confidence max(p, 1 − p), p = {p}")
        ax.set(ylabel="fraction of pairs ordered right", title="Reliability diagram (numbers: pairs per bin)")
        ax.legend(loc="lower right", fontsize=8)

    return figure_png(draw)


def margin_png(result: PairwiseEval) -> str:
    """Histogram of the margins r_c − r_r (a pair-comparing model: its log-odds ℓ), 0 marked."""
    chosen, rejected = _ordered_scores(result)
    margins = chosen - rejected
    what = "log-odds ℓ of chosen ≻ rejected" if result.compares_pairs else "margin r_c − r_r"

    def draw(ax: Axes) -> None:
        edges = np.histogram_bin_edges(np.append(margins, 0.0), bins=30)
        wrong = margins < 0
        ax.hist(
            margins[~wrong],
            bins=edges,
            color=CHOSEN_COLOUR,
            alpha=0.8,
            label=f"ordered right or tied ({(~wrong).sum()})",
        )
        ax.hist(margins[wrong], bins=edges, color=REJECTED_COLOUR, alpha=0.8, label=f"ordered wrong ({wrong.sum()})")
        ax.axvline(0.0, color="black", linewidth=1)
        ax.set(xlabel=what, ylabel="pairs", title=f"Margins (median {np.median(margins):.3g})")
        ax.legend(fontsize=8)

    return figure_png(draw)


def histogram_png(result: PairwiseEval) -> str:
    chosen, rejected = _ordered_scores(result)

    def draw(ax: Axes) -> None:
        edges = np.histogram_bin_edges(np.concatenate([chosen, rejected]), bins=30)
        ax.hist(chosen, bins=edges, alpha=0.6, color=CHOSEN_COLOUR, label=f"chosen (mean {chosen.mean():.3g})")
        ax.hist(rejected, bins=edges, alpha=0.6, color=REJECTED_COLOUR, label=f"rejected (mean {rejected.mean():.3g})")
        ax.set(xlabel="reward", ylabel="replies", title="Rewards of chosen and rejected replies")
        ax.legend(fontsize=8)

    return figure_png(draw)


def subset_png(result: PairwiseEval) -> str | None:
    """Per-subset accuracy with 95 % Wilson intervals; None when the pairs have no subsets."""
    if not result.per_subset:
        return None
    names = list(result.per_subset)
    estimates = list(result.per_subset.values())
    accuracy = np.array([e.accuracy for e in estimates])
    errors = np.array([[e.accuracy - e.ci_low for e in estimates], [e.ci_high - e.accuracy for e in estimates]])

    def draw(ax: Axes) -> None:
        y = np.arange(len(names))
        ax.errorbar(accuracy, y, xerr=errors, fmt="o", color=CHOSEN_COLOUR, ecolor="black", capsize=4)
        ax.axvline(0.5, linestyle="--", color="grey", label="chance")
        ax.axvline(result.overall.accuracy, color=ACCENT_COLOUR, label=f"overall {result.overall.accuracy:.3f}")
        # user text, drawn as written: "$" would otherwise start mathtext, and bad mathtext fails the page
        ax.set_yticks(y, [f"{n} (n = {e.n})" for n, e in zip(names, estimates, strict=True)], parse_math=False)
        ax.invert_yaxis()  # the first subset on top, as in the table
        ax.set(xlim=(-0.02, 1.02), xlabel="pairwise accuracy (95 % Wilson CI)", title="Accuracy per subset")
        ax.legend(fontsize=8, loc="best")

    return figure_png(draw, (6.0, max(2.5, 0.45 * len(names) + 1.5)))


def length_png(result: PairwiseEval) -> str:
    chosen, rejected = _ordered_scores(result)
    ordered = np.asarray(result.ordered, dtype=bool)
    chosen_len = np.asarray(result.chosen_lengths, dtype=float)[ordered]
    rejected_len = np.asarray(result.rejected_lengths, dtype=float)[ordered]
    rho = result.length_bias.reward_length_spearman

    def draw(ax: Axes) -> None:
        ax.scatter(chosen_len, chosen, s=10, alpha=0.6, color=CHOSEN_COLOUR, label="chosen")
        ax.scatter(rejected_len, rejected, s=10, alpha=0.6, color=REJECTED_COLOUR, label="rejected")
        if np.all(np.concatenate([chosen_len, rejected_len]) > 0):
            ax.set_xscale("log")
        ax.set(
            xlabel="reply length (characters)", ylabel="reward", title=f"Reward vs reply length: Spearman ρ = {rho:.3f}"
        )
        ax.legend(fontsize=8)

    return figure_png(draw)


def _ordered_scores(result: PairwiseEval) -> tuple[np.ndarray, np.ndarray]:
    ordered = np.asarray(result.ordered, dtype=bool)
    return np.asarray(result.chosen_scores, dtype=float)[ordered], np.asarray(result.rejected_scores, dtype=float)[
        ordered
    ]


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222;"
    "line-height:1.45}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}h3{font-size:1.05em}"
    "code{overflow-wrap:anywhere}"
    ".warnings{border-left:5px solid #d9822b;background:#fff6e8;padding:0.6em 1em;margin:1em 0}"
    ".warnings.none{border-color:#2ca02c;background:#eef8ee}.warnings h2{margin:0.2em 0;font-size:1.15em}"
    ".warnings ul{margin:0.3em 0;padding-left:1.2em}"
    ".table{overflow-x:auto}table{border-collapse:collapse;margin:0.5em 0;font-size:0.92em}"
    "th,td{border:1px solid #ddd;padding:0.3em 0.6em;text-align:left;vertical-align:top}th{background:#f3f3f3}"
    ".plots{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1em;margin-top:1em}"
    "figure{margin:0;border:1px solid #ddd;padding:0.5em}img{width:100%;height:auto}"
    "figcaption{font-size:0.85em;color:#555}"
    ".pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,380px),1fr));gap:1em}"
    ".pair{border:1px solid #ddd;padding:0.6em 0.8em;font-size:0.9em}.pair h3{margin:0 0 0.4em}"
    ".pair p{margin:0.3em 0;overflow-wrap:anywhere}.pair .label{font-weight:600}"
    ".chosen .label{color:#1f77b4}.rejected .label{color:#d62728}"
    "@media (max-width:700px){body{margin:0.8em auto;padding:0 0.6em}.plots{grid-template-columns:1fr}"
    "h1{font-size:1.35em}}"
)


def render_html(
    result: PairwiseEval,
    model: str,
    data: str,
    numbers: str | None = None,
    *,
    rows: Sequence[dict[str, Any]] | None = None,
) -> str:
    """The page: title, headline warnings, accuracy beside the baselines, the plots, the most
    confidently wrong pairs, then ``numbers`` (default: ``report.results_markdown``) as HTML.

    ``rows`` are the pairs' prediction rows (``predictions.prediction_rows``; with texts when the
    report was given the pairs); without them the wrong pairs are listed by index and scores.
    When every pair is labelled a tie there is no order to plot: the page says so and keeps the numbers.
    """
    payload = eval_payload(result, model, data)
    if numbers is None:
        numbers = results_markdown(result, model, data)
    rows = prediction_rows(result) if rows is None else rows
    figures = _figures(result) if any(result.ordered) else NO_PLOTS
    o = result.overall
    summary = (
        f"<p>Pairwise accuracy <strong>{o.accuracy:.4f}</strong> (95 % Wilson CI {o.ci_low:.4f} – {o.ci_high:.4f}, "
        f"n = {o.n}); ECE {result.calibration.ece:.4f}</p>"
    )
    if (estimate := result.extras.get("cross_validated")) is not None:  # the recipe's k-fold estimate first
        summary = markdown_to_html("\n".join(cross_validated_lines(estimate))) + summary
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Reward model evaluation: {html.escape(model)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Reward model evaluation</h1><p>Model <code>{html.escape(model)}</code> on "
        f"<code>{html.escape(data)}</code>.</p>"
        f"{_warnings(payload['warnings'])}{summary}{_baselines(payload)}{figures}{_wrong_pairs(rows)}"
        f'<h2 id="numbers">All numbers</h2>{markdown_to_html(numbers)}</body></html>\n'
    )


NO_PLOTS = "<p><em>No plots: every pair is labelled a tie, so no pair has an order to measure.</em></p>"


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return (
            '<section id="warnings" class="warnings none"><h2>No warnings</h2><p>No length, formatting or position '
            "bias beyond its interval, no trivial baseline within the model's interval, calibration and sample "
            "size within their thresholds.</p></section>"
        )
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<section id="warnings" class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>'


def _baselines(payload: dict[str, Any]) -> str:
    rows = [("this model", payload["overall"])]
    rows += [(BASELINE_NAMES[k], e) for k, e in payload["baselines"].items()]
    cells = [[name, f"{e['accuracy']:.4f}", f"{e['ci_low']:.4f} – {e['ci_high']:.4f}", str(e["n"])] for name, e in rows]
    return table(["scorer", "accuracy", "95 % CI", "pairs"], cells)


def _wrong_pairs(rows: Sequence[dict[str, Any]]) -> str:
    wrong = confidently_wrong(rows, WRONG_PAIRS_SHOWN)
    title = f'<h2 id="wrong">Most confidently wrong pairs ({len(wrong)} shown)</h2>'
    if not wrong:
        return title + "<p>No pair is ordered wrong.</p>"
    cards = []
    for row in wrong:
        where = f"pair {row['index']}" + (f", id {row['id']}" if "id" in row else "")
        where += f", subset {row['subset']}" if "subset" in row else ""
        head = f"<h3>margin {row['margin']:.3g}, P(chosen ≻ rejected) {row['p_chosen']:.3f}</h3>"
        parts = [f"<p>{html.escape(where)}</p>"]
        for key, label in (("prompt", "Prompt"), ("chosen", "Chosen (preferred)"), ("rejected", "Rejected")):
            if key in row:
                parts.append(f'<p class="{key}"><span class="label">{label}:</span> {html.escape(row[key])}</p>')
        cards.append(f'<div class="pair">{head}{"".join(parts)}</div>')
    note = "<p>Scored wrong with the largest gaps: read these first for label errors or learnt shortcuts.</p>"
    return f'{title}{note}<div class="pairs">{"".join(cards)}</div>'


def _figures(result: PairwiseEval) -> str:
    rewards = not result.compares_pairs  # the histogram and length plots need a reward per reply
    plots = [
        (
            "reliability",
            reliability_png(result),
            "Confidence against observed accuracy per bin, with each bin's number of pairs; "
            "the dashed diagonal is perfect calibration.",
        ),
        ("margins", margin_png(result), "Margins of the pairs with a labelled order; red: ordered wrong."),
        (
            "histogram",
            histogram_png(result) if rewards else None,
            "Rewards of the chosen and the rejected replies (pairs with a labelled order).",
        ),
        ("subsets", subset_png(result), "Accuracy per subset; bars are 95 % Wilson intervals."),
        (
            "length",
            length_png(result) if rewards else None,
            "Each reply's reward against its length; ρ is over both replies of every pair.",
        ),
    ]
    figures = "".join(
        f'<figure id="{name}"><img alt="{name} plot" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, png, caption in plots
        if png is not None
    )
    return f'<div class="plots">{figures}</div>'


def write_html_report(result: PairwiseEval, directory: str | Path, model: str, data: str) -> Path:
    path = Path(directory) / "eval.html"
    write_text_atomic(path, render_html(result, model, data))
    return path
