"""One self-contained HTML page of an evaluation: the numbers of ``eval.md`` plus four plots.

The page loads nothing from outside (no scripts, fonts or style sheets; each plot is a base64 PNG
in a ``data:`` URL), so it can be mailed, attached to a pull request or opened offline. Plots are
drawn with matplotlib's Agg renderer on ``Figure`` objects (never ``pyplot``'s global state), so
reports can be written from any thread and without a display. Every piece of text from the user
(model path, data path, subset names) is HTML-escaped, and drawn literally in the plots: a subset
named ``a$b$c`` is not mathtext, and a ``text.usetex`` in the user's matplotlibrc does not apply.

Plots:
- reliability diagram: the top-label confidence max(p, 1 − p), p = σ((r_c − r_r) / T), against the
  fraction of pairs ordered right, per equal-width confidence bin, with the diagonal a calibrated
  model lies on (the binning of ``calibration.expected_calibration_error``); after temperature
  scaling too when the evaluation fitted a temperature;
- histograms of the chosen and the rejected replies' rewards;
- per-subset accuracy with its 95 % bootstrap interval as error bars;
- reward against reply length (characters), with Spearman's ρ in the title.

A model that compares pairs (``PairwiseEval.compares_pairs``) has no reward per reply: its page
has the reliability diagram of P(chosen ≻ rejected) and the per-subset plot, not the two plots of
per-reply rewards.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.calibration import preference_probabilities
from rewardlab.evaluate.pairwise import PairwiseEval

CHOSEN_COLOUR, REJECTED_COLOUR, ACCENT_COLOUR = "#1f77b4", "#d62728", "#2ca02c"


@dataclass(frozen=True)
class ReliabilityBins:
    """Per confidence bin: lower edge, mean confidence, fraction ordered right, and pair count.

    Bins without pairs have NaN confidence and accuracy and a count of 0.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    def ece(self) -> float:
        """Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|, the expected calibration error of these bins."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_bins(
    chosen: ArrayLike, rejected: ArrayLike, *, temperature: float = 1.0, bins: int = 10
) -> ReliabilityBins:
    """The top-label reliability diagram of σ((r_c − r_r) / T) (Guo et al. 2017, sec. 2).

    Confidence max(p, 1 − p) lies in [1/2, 1], cut into ``bins`` equal-width bins (the last one
    closed); a pair counts as right when the favoured reply is the chosen one, 1/2 when p = 1/2,
    exactly as in ``expected_calibration_error``, so ``ece()`` of these bins is that ECE.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1 (got {bins})")
    p = preference_probabilities(chosen, rejected, temperature)
    confidence = np.maximum(p, 1 - p)
    correct = np.where(p == 0.5, 0.5, (p > 0.5).astype(float))
    index = np.minimum(((confidence - 0.5) * 2 * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, bins) / count
        accuracy = np.bincount(index, correct, bins) / count
    return ReliabilityBins(0.5 + np.arange(bins) / (2 * bins), mean_confidence, accuracy, count.astype(int))


def _png(draw: Callable[[Axes], None], size: tuple[float, float] = (6.0, 4.0)) -> str:
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
        for label, temperature, colour in curves:
            b = reliability_bins(chosen, rejected, temperature=temperature, bins=result.calibration.bins)
            filled = b.count > 0
            ax.plot(
                b.confidence[filled], b.accuracy[filled], marker="o", color=colour, label=f"{label}, ECE {b.ece():.3f}"
            )
        p = "P(chosen ≻ rejected)" if result.compares_pairs else "σ(r_c − r_r)"
        ax.set(xlim=(0.48, 1.02), ylim=(-0.02, 1.02), xlabel=f"confidence max(p, 1 − p), p = {p}")
        ax.set(ylabel="fraction of pairs ordered right", title="Reliability diagram")
        ax.legend(loc="lower right", fontsize=8)

    return _png(draw)


def histogram_png(result: PairwiseEval) -> str:
    chosen, rejected = _ordered_scores(result)

    def draw(ax: Axes) -> None:
        edges = np.histogram_bin_edges(np.concatenate([chosen, rejected]), bins=30)
        ax.hist(chosen, bins=edges, alpha=0.6, color=CHOSEN_COLOUR, label=f"chosen (mean {chosen.mean():.3g})")
        ax.hist(rejected, bins=edges, alpha=0.6, color=REJECTED_COLOUR, label=f"rejected (mean {rejected.mean():.3g})")
        ax.set(xlabel="reward", ylabel="replies", title="Rewards of chosen and rejected replies")
        ax.legend(fontsize=8)

    return _png(draw)


def subset_png(result: PairwiseEval) -> str | None:
    """Per-subset accuracy with 95 % bootstrap intervals; None when the pairs have no subsets."""
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
        ax.set(xlim=(-0.02, 1.02), xlabel="pairwise accuracy (95 % bootstrap CI)", title="Accuracy per subset")
        ax.legend(fontsize=8, loc="best")

    return _png(draw, (6.0, max(2.5, 0.45 * len(names) + 1.5)))


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

    return _png(draw)


def _ordered_scores(result: PairwiseEval) -> tuple[np.ndarray, np.ndarray]:
    ordered = np.asarray(result.ordered, dtype=bool)
    return np.asarray(result.chosen_scores, dtype=float)[ordered], np.asarray(result.rejected_scores, dtype=float)[
        ordered
    ]


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;font-size:0.85em}"
    ".plots{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1em}"
    "figure{margin:0;border:1px solid #ddd;padding:0.5em}img{width:100%;height:auto}"
    "figcaption{font-size:0.85em;color:#555}"
)


def render_html(result: PairwiseEval, model: str, data: str, numbers: str) -> str:
    """The page: title, a summary line, the plots, then ``numbers`` (the full Markdown report) as
    preformatted text.

    When every pair is labelled a tie there is no order to plot: the page says so and keeps the numbers.
    """
    return _page(model, data, _figures(result) if any(result.ordered) else NO_PLOTS, result, numbers)


NO_PLOTS = "<p><em>No plots: every pair is labelled a tie, so no pair has an order to measure.</em></p>"


def _figures(result: PairwiseEval) -> str:
    rewards = not result.compares_pairs  # the histogram and length plots need a reward per reply
    plots = [
        (
            "reliability",
            reliability_png(result),
            "Confidence against observed accuracy per bin; the dashed diagonal is perfect calibration.",
        ),
        (
            "histogram",
            histogram_png(result) if rewards else None,
            "Rewards of the chosen and the rejected replies (pairs with a labelled order).",
        ),
        ("subsets", subset_png(result), "Accuracy per subset; bars are 95 % bootstrap intervals."),
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


def _page(model: str, data: str, figures: str, result: PairwiseEval, numbers: str) -> str:
    o = result.overall
    summary = (
        f"Pairwise accuracy <strong>{o.accuracy:.4f}</strong> (95 % bootstrap CI {o.ci_low:.4f} – {o.ci_high:.4f}, "
        f"n = {o.n}); ECE {result.calibration.ece:.4f}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Reward model evaluation: {html.escape(model)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Reward model evaluation</h1><p>Model <code>{html.escape(model)}</code> on "
        f"<code>{html.escape(data)}</code>.</p><p>{summary}</p>"
        f"{figures}"
        f"<h2>All numbers</h2><pre>{html.escape(numbers)}</pre></body></html>\n"
    )


def write_html_report(result: PairwiseEval, directory: str | Path, model: str, data: str, numbers: str) -> Path:
    path = Path(directory) / "eval.html"
    write_text_atomic(path, render_html(result, model, data, numbers))
    return path
