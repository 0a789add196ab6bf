"""The Markdown of a pairwise evaluation (``eval.md``) and the payload of ``eval.json``.

``eval_payload`` adds to the evaluation's numbers the trivial length baselines (``baselines.py``)
and the headline warnings computed from them (``headline.py``); ``render_markdown`` writes the
warnings first, then every number, with tables for the baselines, the subsets and the reliability
bins. ``report.py`` writes the files; ``html_report.py`` renders the same numbers as a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from rewardlab.evaluate.baselines import BASELINE_NAMES, length_baselines
from rewardlab.evaluate.by_group import by_group_lines
from rewardlab.evaluate.calibration import CalibrationOutput, reliability_bins
from rewardlab.evaluate.headline import headline_warnings
from rewardlab.evaluate.metrics import AccuracyEstimate
from rewardlab.evaluate.pairwise import PairwiseEval
from rewardlab.evaluate.per_source import per_source_lines

NO_WARNINGS = (
    "none: no length, formatting or position bias beyond its interval, no trivial baseline within reach, "
    "calibration and sample size fine (thresholds in rewardlab.evaluate.headline)"
)


def _interval(e: AccuracyEstimate) -> str:
    return f"{e.accuracy:.4f} (95 % CI {e.ci_low:.4f} – {e.ci_high:.4f}, n = {e.n})"


def baselines(result: PairwiseEval) -> dict[str, AccuracyEstimate]:
    """Always-the-shorter and always-the-longer reply, scored on the pairs with a labelled order."""
    ordered = np.asarray(result.ordered, dtype=bool)
    chosen, rejected = (np.asarray(x, dtype=float)[ordered] for x in (result.chosen_lengths, result.rejected_lengths))
    return length_baselines(chosen, rejected)


def eval_payload(result: PairwiseEval, model: str, data: str) -> dict[str, Any]:
    """What ``eval.json`` holds: the evaluation, the trivial baselines, and the headline warnings
    computed from those numbers (``headline.headline_warnings``)."""
    payload = {"model": model, "data": data, **result.to_dict()}
    payload["baselines"] = {name: asdict(e) for name, e in baselines(result).items()}
    payload["warnings"] = headline_warnings(payload)
    return payload


def _calibration(c: CalibrationOutput) -> str:
    return f"ECE {c.ece:.4f} ({c.bins} equal-width confidence bins), Brier {c.brier:.4f}, NLL {c.nll:.4f}"


def _calibration_lines(result: PairwiseEval) -> list[str]:
    of = "P(chosen ≻ rejected)" if result.compares_pairs else "σ(r_c − r_r)"
    lines = [f"- calibration of {of}: {_calibration(result.calibration)} (always ½ scores Brier 0.25)"]
    if result.calibrated is not None:
        scaled = result.calibrated
        lines.append(f"- after temperature scaling (T = {scaled.temperature:.4g}, {result.temperature_source}): ")
        lines[-1] += _calibration(scaled)
    return lines


def _extra_lines(result: PairwiseEval) -> list[str]:
    """The optional checks (``rewardlab eval --contrast/--invariance/--policy-ranking``)."""
    lines = []
    contrast = result.extras.get("contrast")
    if contrast is not None:
        lines.append(
            f"- contrast consistency (both prompts of a contrast pair ranked right): {contrast.consistency:.4f} "
            f"on {contrast.n} contrast pairs; instance accuracy {contrast.instance_accuracy:.4f}"
        )
    for check in result.extras.get("invariance", {}).values():
        lines.append(
            f"- invariance to {check.rewrite.replace('_', ' ')}: {check.flips} of {check.n} preferences flip, "
            f"scores move by {check.mean_score_change:.3g} on average (at most {check.max_score_change:.3g})"
        )
    ranking = result.extras.get("policy_ranking")
    if ranking is not None:
        lines.append(f"- policy ranking accuracy (log π(y_c|x) > log π(y_r|x)): {ranking.ranking_accuracy:.4f}")
        if ranking.idealized_ranking_accuracy is not None:
            lines[-1] += (
                f"; idealised ranking accuracy of the DPO optimum (β = {ranking.beta:g}, p = {ranking.p:g}): "
                f"{ranking.idealized_ranking_accuracy:.4f}, gap {ranking.alignment_gap:+.4f}"
            )
    return lines


def _length_bias_lines(result: PairwiseEval) -> list[str]:
    bias = result.length_bias
    lines = [
        f"- accuracy when the chosen reply is longer ({bias.unit}): {_interval(bias.chosen_longer)}",
        f"- accuracy when the chosen reply is shorter: {_interval(bias.chosen_shorter)}",
        f"- pairs whose replies have equal length (in neither group): {bias.equal_length}",
    ]
    if bias.reward_length_spearman is not None:
        lines.append(f"- Spearman correlation of reward with reply length: {bias.reward_length_spearman:.4f}")
    return lines + _style_bias_lines(result)


def _style_bias_lines(result: PairwiseEval) -> list[str]:
    style = result.style_bias
    if style is None:
        return []
    lines = [
        "- accuracy when the chosen reply has more Markdown formatting (headers, lists, bold, code): "
        + _interval(style.chosen_more_formatted),
        f"- accuracy when the chosen reply has less formatting: {_interval(style.chosen_less_formatted)}",
        f"- pairs whose replies have equal formatting (in neither group): {style.equal_formatting}",
    ]
    if style.reward_formatting_spearman is not None:
        lines.append(f"- Spearman correlation of reward with formatting: {style.reward_formatting_spearman:.4f}")
    return lines


def _score_lines(result: PairwiseEval) -> list[str]:
    """The reward margin, or why there is none: a model that compares pairs has no reward per reply."""
    if result.compares_pairs:
        return [
            "- the model compares pairs (P(chosen ≻ rejected)) and gives no reward for one reply, "
            "so no reward margin or reward-length correlation is reported"
        ]
    return [f"- mean reward margin (chosen − rejected): {result.mean_margin:.4f}"]


def _baseline_table(result: PairwiseEval) -> list[str]:
    rows = [("this model", result.overall)]
    rows += [(BASELINE_NAMES[name], e) for name, e in baselines(result).items()]
    lines = ["", "### Against trivial baselines", "", "| scorer | accuracy | 95 % CI | n |", "|---|---|---|---|"]
    return lines + [f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |" for name, e in rows]


def _bins_table(result: PairwiseEval) -> list[str]:
    """The raw rewards' reliability bins that hold pairs: range, count, mean confidence, accuracy."""
    ordered = np.asarray(result.ordered, dtype=bool)
    if not ordered.any():
        return []
    chosen = np.asarray(result.chosen_scores, dtype=float)[ordered]
    rejected = np.asarray(result.rejected_scores, dtype=float)[ordered]
    b = reliability_bins(chosen, rejected, bins=result.calibration.bins)
    width = 0.5 / len(b.edges)
    lines = ["", "### Reliability bins (raw)", "", "| confidence | pairs | mean confidence | accuracy |"]
    lines.append("|---|---|---|---|")
    for low, n, conf, acc in zip(b.edges, b.count, b.confidence, b.accuracy, strict=True):
        if n:
            lines.append(f"| {low:.2f} – {low + width:.2f} | {n} | {conf:.4f} | {acc:.4f} |")
    return lines


def warning_lines(warnings: Sequence[str]) -> list[str]:
    """The report's first section: each headline warning, or that there is none."""
    return ["## Warnings", "", *[f"- {w}" for w in warnings or [NO_WARNINGS]]]


def results_markdown(result: PairwiseEval, model: str, data: str) -> str:
    """Every number of the evaluation (the report after its warnings)."""
    o = result.overall
    lines = [
        "## Results",
        "",
        f"- model: `{model}`",
        f"- data: `{data}`",
        f"- pairwise accuracy: **{o.accuracy:.4f}** (95 % Wilson CI {o.ci_low:.4f} – {o.ci_high:.4f}, n = {o.n})",
        f"- scored in {result.precision}",
        *_score_lines(result),
        f"- exact ties in score: {result.score_ties} ({result.tie_rule})",
        f"- pairs labelled as ties (left out of accuracy): {result.tie_pairs}",
        f"- pairs truncated to the model's max length (from the left): {result.truncated_pairs}",
        *_calibration_lines(result),
        *_length_bias_lines(result),
        *_extra_lines(result),
        *_baseline_table(result),
    ]
    if result.per_subset:
        lines += ["", "### Per subset", "", "| subset | accuracy | 95 % CI | n |", "|---|---|---|---|"]
        for name, e in result.per_subset.items():
            lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
    if (by_source := result.extras.get("per_source")) is not None:
        lines += per_source_lines(by_source)
    if (by_group := result.extras.get("by_group")) is not None:
        lines += by_group_lines(by_group)
    lines += _bins_table(result)
    return "\n".join(lines) + "\n"


def cross_validated_lines(estimate: dict[str, Any]) -> list[str]:
    """The recipe's shipped k-fold estimate (``runs.recipes.recipe_estimate``), put before this one
    split's accuracy: a single split of a small data set moves by several points from split to split."""
    m, pooled, gap = estimate["mean"], estimate["pooled"], estimate["pooled_length"]["gap"]
    measured = estimate["measured"]
    return [
        "## Cross-validated accuracy of this recipe",
        "",
        f"The `{estimate['recipe']}` recipe over {m['k']} folds of its data (`rewardlab cv`): "
        f"**{m['mean']:.4f}** (95 % t-interval {m['low']:.4f} – {m['high']:.4f} across folds, fold standard "
        f"deviation {m['std']:.4f}); all folds' test pairs pooled: {pooled['accuracy']:.4f} (Wilson "
        f"{pooled['ci_low']:.4f} – {pooled['ci_high']:.4f}, n = {pooled['n']}); accuracy when the chosen reply "
        f"is the longer minus when it is the shorter: {gap:+.3f}. Measured {measured['date']} on "
        f"{measured['cpu']}, commit {measured['commit']}. The accuracy below is this run's single held-out split.",
        "",
    ]


def render_markdown(result: PairwiseEval, model: str, data: str) -> str:
    """The whole Markdown report: title, headline warnings, the recipe's cross-validated estimate
    when one applies, then every number."""
    warnings = eval_payload(result, model, data)["warnings"]
    head = ["# Reward model evaluation", "", *warning_lines(warnings), ""]
    if (estimate := result.extras.get("cross_validated")) is not None:
        head += cross_validated_lines(estimate)
    return "\n".join(head) + "\n" + results_markdown(result, model, data)
