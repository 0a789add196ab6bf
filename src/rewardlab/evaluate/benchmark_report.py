"""Reports of benchmark-format evaluations (RewardBench, RewardBench 2, RewardMATH, k-wise rankings) as
Markdown for people and JSON for programs, written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rewardlab.destinations import write_report_files
from rewardlab.evaluate.metrics import AccuracyEstimate
from rewardlab.evaluate.principles import PrincipleEval, render_principles
from rewardlab.evaluate.ranking import RankingEval
from rewardlab.evaluate.rewardbench import RewardBench2Eval, RewardBenchEval
from rewardlab.evaluate.rewardmath import RewardMathEval, render_rewardmath

BenchmarkEval = RewardBenchEval | RewardBench2Eval | RewardMathEval | RankingEval | PrincipleEval
STEMS = {
    RewardBenchEval: "rewardbench",
    RewardBench2Eval: "rewardbench2",
    RewardMathEval: "rewardmath",
    RankingEval: "kwise",
    PrincipleEval: "principles",
}


def _row(name: str, e: AccuracyEstimate, weight: float | None = None) -> str:
    extra = f" | {weight:g}" if weight is not None else ""
    return f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n}{extra} |"


def render_rewardbench(result: RewardBenchEval, model: str, data: str) -> list[str]:
    lines = [
        "# RewardBench evaluation",
        "",
        f"- model: `{model}`",
        f"- data: `{data}`",
        f"- score (mean of {len(result.sections)} sections): **{result.overall:.4f}**",
        f"- exact ties in score: {result.score_ties} (each counted {result.tie_credit:g} right)",
    ]
    if result.missing_sections:
        lines.append(f"- sections with no data (left out of the mean): {', '.join(result.missing_sections)}")
    if result.unmapped_subsets:
        lines.append(f"- subsets in no section (left out of the sections): {', '.join(result.unmapped_subsets)}")
    lines += ["", "| section | score |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in result.sections.items()]
    lines += ["", "| subset | accuracy | 95 % CI | n | weight |", "|---|---|---|---|---|"]
    lines += [_row(name, e, result.weights[name]) for name, e in result.per_subset.items()]
    return lines


def render_rewardbench2(result: RewardBench2Eval, model: str, data: str) -> list[str]:
    lines = [
        "# RewardBench 2 evaluation",
        "",
        f"- model: `{model}`",
        f"- data: `{data}` ({result.prompts} prompts)",
        f"- score (mean of subsets): **{result.overall:.4f}**",
        "- best-of-N: a prompt scores c/k when k replies share the top score and c of them are correct",
        "",
        "| subset | best-of-N | 95 % CI | prompts |",
        "|---|---|---|---|",
    ]
    lines += [_row(name, e) for name, e in result.per_subset.items()]
    if result.ties is not None:
        t = result.ties
        lines += [
            "",
            f"Ties: **{t.score:.4f}** over {t.prompts} prompts = 0.30 × tied accuracy {t.tied_accuracy:.4f} "
            f"+ 0.30 × reference accuracy {t.ref_accuracy:.4f} + 0.20 × correctness preferred "
            f"{t.correctness_preferred:.4f} + 0.20 × hard {t.correctness_preferred_hard:.4f} "
            f"+ 0.01 × margin {t.margin_score:.4f}",
        ]
    return lines


def render_rankings(result: RankingEval, model: str, data: str) -> list[str]:
    low, high = result.kendall_tau_ci
    sizes = ", ".join(f"{n} of {k} replies" for k, n in result.sizes.items())
    return [
        "# Ranking evaluation (k-wise)",
        "",
        f"- model: `{model}`",
        f"- data: `{data}` ({result.rankings} rankings: {sizes})",
        f"- ranking accuracy (every pair in order): **{result.ranking_accuracy.accuracy:.4f}** "
        f"(95 % CI {result.ranking_accuracy.ci_low:.4f} – {result.ranking_accuracy.ci_high:.4f})",
        f"- pairs in order within rankings (ties ½): {result.pair_accuracy.accuracy:.4f} "
        f"(95 % CI {result.pair_accuracy.ci_low:.4f} – {result.pair_accuracy.ci_high:.4f})",
        f"- mean Kendall τ-b: {result.kendall_tau:.4f} (95 % CI {low:.4f} – {high:.4f})",
    ]


def render_benchmark(result: BenchmarkEval, model: str, data: str) -> str:
    if isinstance(result, RewardBenchEval):
        lines = render_rewardbench(result, model, data)
    elif isinstance(result, RewardBench2Eval):
        lines = render_rewardbench2(result, model, data)
    elif isinstance(result, RewardMathEval):
        lines = render_rewardmath(result, model, data)
    elif isinstance(result, PrincipleEval):
        lines = render_principles(result, model, data)
    else:
        lines = render_rankings(result, model, data)
    return "\n".join(lines) + "\n"


def write_benchmark_report(result: BenchmarkEval, directory: str | Path, model: str, data: str) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` in ``directory``, the stem naming the format."""
    directory = Path(directory)
    stem = STEMS[type(result)]
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    payload = json.dumps({"model": model, "data": data, **asdict(result)}, indent=2) + "\n"
    write_report_files(directory, {json_path: payload, md_path: render_benchmark(result, model, data)})
    return json_path, md_path
