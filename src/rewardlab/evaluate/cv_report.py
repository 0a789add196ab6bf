"""A k-fold cross-validated accuracy estimate from each fold's test predictions: pure functions and
the report (``cv.json``, ``cv.md``).

Three views of the same predictions, because they answer different questions:

- per fold: accuracy with its 95 % Wilson interval (``metrics.wilson_interval``);
- across folds: the mean of the k fold accuracies with a Student-t interval, mean ± t₀.₉₇₅,ₖ₋₁ · s/√k
  (s the sample standard deviation of the fold accuracies). It treats the folds as independent,
  which they are not (each pair of folds shares most of its training data), so it is narrower than
  the truth; no unbiased estimator of that variance exists (Bengio & Grandvalet 2004, "No Unbiased
  Estimator of the Variance of K-Fold Cross-Validation"). Read it as the spread of the recipe
  across folds, not as a guarantee;
- pooled: every test prediction once (each pair is in exactly one test fold), accuracy with a Wilson
  interval over all n pairs. It counts only the test-set noise, not the training noise.

The length-bias figures (``bias.length_bias``: accuracy when the chosen reply is longer vs shorter
in characters, their gap, and Spearman's ρ between reward and length) are given per fold and pooled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from rewardlab.evaluate.bias import length_bias
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct


@dataclass
class FoldPredictions:
    """One fold's scores on its test pairs with a labelled order (tie-labelled pairs left out), the
    replies' lengths in characters, and what the fold cost."""

    chosen_scores: list[float]
    rejected_scores: list[float]
    chosen_lengths: list[int]
    rejected_lengths: list[int]
    per_reply_rewards: bool = True
    """False for a model that compares pairs (its scores are ±ℓ/2): no reward-length ρ."""
    seconds: float | None = None
    peak_memory_mb: float | None = None


@dataclass
class LengthFigures:
    """Accuracy (Wilson 95 %) on chosen-longer and chosen-shorter pairs, ``gap`` = longer − shorter
    (positive: the model is right more often when the longer reply won), and ρ(reward, length)."""

    chosen_longer: AccuracyEstimate
    chosen_shorter: AccuracyEstimate
    gap: float
    reward_length_spearman: float | None


@dataclass
class FoldSummary:
    accuracy: AccuracyEstimate
    length: LengthFigures
    seconds: float | None
    peak_memory_mb: float | None


@dataclass
class MeanInterval:
    """The mean of k values with its Student-t interval (NaN ends for fewer than two values)."""

    mean: float
    low: float
    high: float
    std: float
    k: int


@dataclass
class CVSummary:
    folds: list[FoldSummary]
    mean: MeanInterval
    """Mean of the fold accuracies, t-interval across folds."""
    pooled: AccuracyEstimate
    """All test predictions together, Wilson interval."""
    pooled_length: LengthFigures

    def to_dict(self) -> dict:
        """The summary as JSON-ready values: an undefined figure (a fold with no chosen-shorter pair,
        an interval of one fold) is None, not NaN, which strict JSON readers refuse."""
        return _defined(asdict(self))

    def markdown(self, title: str = "Cross-validated accuracy") -> str:
        return cv_markdown(self, title)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval:
    """mean ± t_{(1+c)/2, k−1} · s/√k with s the sample standard deviation (ddof 1) of the k values."""
    values = np.asarray(values, dtype=float)
    k = int(values.size)
    if k == 0:
        return MeanInterval(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(values.mean())
    if k < 2:
        return MeanInterval(mean, float("nan"), float("nan"), float("nan"), k)
    std = float(values.std(ddof=1))
    half = float(student_t.ppf((1 + confidence) / 2, k - 1)) * std / math.sqrt(k)
    return MeanInterval(mean, mean - half, mean + half, std, k)


def length_figures(
    chosen_scores: Sequence[float],
    rejected_scores: Sequence[float],
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    per_reply_rewards: bool = True,
) -> LengthFigures:
    bias = length_bias(
        chosen_scores, rejected_scores, chosen_lengths, rejected_lengths, per_reply_rewards=per_reply_rewards
    )
    gap = bias.chosen_longer.accuracy - bias.chosen_shorter.accuracy
    return LengthFigures(bias.chosen_longer, bias.chosen_shorter, gap, bias.reward_length_spearman)


def summarise_folds(folds: Sequence[FoldPredictions]) -> CVSummary:
    """Per-fold, across-fold (t) and pooled (Wilson) accuracy and length bias of ``folds``."""
    if not folds:
        raise ValueError("no folds to summarise")
    summaries = []
    for fold in folds:
        correct = pairwise_correct(fold.chosen_scores, fold.rejected_scores)
        length = length_figures(
            fold.chosen_scores, fold.rejected_scores, fold.chosen_lengths, fold.rejected_lengths, fold.per_reply_rewards
        )
        summaries.append(FoldSummary(estimate(correct), length, fold.seconds, fold.peak_memory_mb))
    columns = [
        [value for fold in folds for value in getattr(fold, name)]
        for name in ("chosen_scores", "rejected_scores", "chosen_lengths", "rejected_lengths")
    ]
    per_reply = all(fold.per_reply_rewards for fold in folds)
    return CVSummary(
        folds=summaries,
        mean=t_interval([s.accuracy.accuracy for s in summaries]),
        pooled=estimate(pairwise_correct(columns[0], columns[1])),
        pooled_length=length_figures(*columns, per_reply_rewards=per_reply),
    )


def _defined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_defined(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _ci(e: AccuracyEstimate) -> str:
    return f"{_num(e.accuracy)} ({_num(e.ci_low)}–{_num(e.ci_high)}, n={e.n})" if e.n else "– (n=0)"


def cv_markdown(summary: CVSummary, title: str = "Cross-validated accuracy") -> str:
    m, p, pl = summary.mean, summary.pooled, summary.pooled_length
    lines = [
        f"# {title}",
        "",
        f"- **mean over {m.k} folds: {_num(m.mean)}** (95 % t-interval {_num(m.low)}–{_num(m.high)}, "
        f"fold sd {_num(m.std)})",
        f"- pooled over all {p.n} test pairs: {_ci(p)}, 95 % Wilson",
        f"- length bias, pooled: accuracy {_ci(pl.chosen_longer)} when the chosen reply is longer, "
        f"{_ci(pl.chosen_shorter)} when shorter (gap {_num(pl.gap)}); ρ(reward, length) "
        f"{_num(pl.reward_length_spearman)}",
        "",
        "| fold | test pairs | accuracy (95 % Wilson) | chosen longer | chosen shorter | gap | ρ(reward, length) "
        "| time (s) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(summary.folds):
        lines.append(
            f"| {i} | {f.accuracy.n} | {_ci(f.accuracy)} | {_num(f.length.chosen_longer.accuracy)} "
            f"(n={f.length.chosen_longer.n}) | {_num(f.length.chosen_shorter.accuracy)} "
            f"(n={f.length.chosen_shorter.n}) | {_num(f.length.gap)} | {_num(f.length.reward_length_spearman)} "
            f"| {_num(f.seconds, 0)} | {_num(f.peak_memory_mb, 0)} |"
        )
    lines += [
        "",
        "Each pair is tested in exactly one fold, by a model that never saw it nor chose anything with it "
        "(validation is a separate slice of the other folds). The t-interval treats folds as independent, "
        "which they are not (they share training data), so it understates the uncertainty "
        "(Bengio & Grandvalet 2004). Lengths are in characters; gap = longer − shorter.",
        "",
    ]
    return "\n".join(lines)
