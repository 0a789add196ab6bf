"""Evaluation reports as JSON (for programs) and Markdown (for people), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.pairwise import PairwiseEval


def render_markdown(result: PairwiseEval, model: str, data: str) -> str:
    o = result.overall
    lines = [
        "# Reward model evaluation",
        "",
        f"- model: `{model}`",
        f"- data: `{data}`",
        f"- pairwise accuracy: **{o.accuracy:.4f}** (95 % bootstrap CI {o.ci_low:.4f} – {o.ci_high:.4f}, n = {o.n})",
        f"- scored in {result.precision}",
        f"- mean reward margin (chosen − rejected): {result.mean_margin:.4f}",
        f"- exact ties in score: {result.score_ties} ({result.tie_rule})",
        f"- pairs labelled as ties (left out of accuracy): {result.tie_pairs}",
        f"- pairs truncated to the model's max length (from the left): {result.truncated_pairs}",
    ]
    if result.per_subset:
        lines += ["", "| subset | accuracy | 95 % CI | n |", "|---|---|---|---|"]
        for name, e in result.per_subset.items():
            lines.append(f"| {name} | {e.accuracy:.4f} | {e.ci_low:.4f} – {e.ci_high:.4f} | {e.n} |")
    return "\n".join(lines) + "\n"


def write_report(result: PairwiseEval, directory: str | Path, model: str, data: str) -> tuple[Path, Path]:
    directory = Path(directory)
    payload = {"model": model, "data": data, **result.to_dict()}
    json_path, md_path = directory / "eval.json", directory / "eval.md"
    write_text_atomic(json_path, json.dumps(payload, indent=2) + "\n")
    write_text_atomic(md_path, render_markdown(result, model, data))
    return json_path, md_path
