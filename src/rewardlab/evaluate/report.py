"""Evaluation reports as JSON (for programs), Markdown and HTML with plots (for people).

A report is written as one unit: every file is rendered first, then all are written together, so a
failure (a plot that cannot be drawn, a full disk) leaves the previous report whole, never new
numbers beside an old page.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.destinations import write_report_files
from rewardlab.evaluate.calibration import CalibrationOutput
from rewardlab.evaluate.compare import ModelComparison
from rewardlab.evaluate.metrics import AccuracyEstimate
from rewardlab.evaluate.pairwise import PairwiseEval


def _interval(e: AccuracyEstimate) -> str:
    return f"{e.accuracy:.4f} (95 % CI {e.ci_low:.4f} – {e.ci_high:.4f}, n = {e.n})"


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


def render_markdown(result: PairwiseEval, model: str, data: str) -> str:
    o = result.overall
    lines = [
        "# Reward model evaluation",
        "",
        f"- model: `{model}`",
        f"- data: `{data}`",
        f"- pairwise accuracy: **{o.accuracy:.4f}** (95 % bootstrap CI {o.ci_low:.4f} – {o.ci_high:.4f}, n = {o.n})",
        f"- scored in {result.precision}",
        *_score_lines(result),
        f"- exact ties in score: {result.score_ties} ({result.tie_rule})",
        f"- pairs labelled as ties (left out of accuracy): {result.tie_pairs}",
        f"- pairs truncated to the model's max length (from the left): {result.truncated_pairs}",
        *_calibration_lines(result),
        *_length_bias_lines(result),
        *_extra_lines(result),
    ]
    if result.per_subset:
        lines += ["", "| subset | accuracy | 95 % CI | n |", "|---|---|---|---|"]
        for name, e in result.per_subset.items():
            lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
    return "\n".join(lines) + "\n"


def write_report(result: PairwiseEval, directory: str | Path, model: str, data: str) -> tuple[Path, Path, Path]:
    """``eval.json``, ``eval.md`` and ``eval.html`` (the same numbers with plots), written as one unit."""
    from rewardlab.evaluate.html_report import render_html  # matplotlib loads only when a report is written

    directory = Path(directory)
    payload = {"model": model, "data": data, **result.to_dict()}
    numbers = render_markdown(result, model, data)
    files = {
        directory / "eval.json": json.dumps(payload, indent=2) + "\n",
        directory / "eval.md": numbers,
        directory / "eval.html": render_html(result, model, data, numbers),
    }
    write_report_files(directory, files)
    json_path, md_path, html_path = files
    return json_path, md_path, html_path


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
