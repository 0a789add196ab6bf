"""The DAA over-optimisation study on disk: JSON, a Markdown report and a PNG plot, each written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rewardlab.atomic import write_bytes_atomic, write_text_atomic
from rewardlab.policy.daa_overopt_fit import gold_form

FILES = ("daa_overopt.json", "daa_overopt.md", "daa_overopt.png")


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_daa_markdown(result: dict[str, Any]) -> str:
    train, evaluation, data = result["train"], result["eval"], result["data"]
    lora = train["lora"]
    lines = [
        "# Over-optimisation of direct alignment algorithms",
        "",
        f"- policy: `{result['policy']}`"
        + (
            f", LoRA r = {lora['r']}, α = {lora['alpha']:g} ({lora['target_modules']})"
            if lora
            else ", full fine-tuning"
        ),
        f"- gold: `{result['gold']}`",
        f"- data: {data['path']}, {data['train_pairs']} training pairs ({data['skipped_rows']} rows skipped); "
        f"{data['prompts']} prompts of the {data['prompts_from']} split",
        f"- training: {train['steps']} steps of {train['batch_pairs']} pairs, lr {train['lr']:g}, "
        f"seed {train['seed']}, {train['precision']} passes; every variant from the same start, on the same batches",
        f"- checkpoints: step 0 and every {evaluation['every']} steps; {evaluation['samples_per_prompt']} replies "
        f"per prompt (temperature 1, ≤ {evaluation['max_new_tokens']} new tokens, seed {evaluation['seed']}, "
        "the same seeds at every checkpoint)",
    ]
    if result.get("goal_score") is not None and any(c["reward_augmented"] for c in result["curves"].values()):
        lines.append(f"- +ra: reward-augmented pairs; sampled with the goal score {result['goal_score']:g}")
    lines += [
        "",
        "KL(π‖π_ref) is estimated on the policy's own replies (nats per reply, ± standard error); *gold* is "
        "the gold model's mean reward of the same replies (± standard error).",
        "",
        "| variant | step | KL | sqrt(KL) | gold | gold − step 0 | train loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, curve in result["curves"].items():
        base = curve["points"][0]["gold"]
        for p in curve["points"]:
            lines.append(
                f"| {name} | {p['step']} | {p['kl']:.3f} ± {p['kl_se']:.3f} | {p['sqrt_kl']:.3f} | "
                f"{p['gold']:.3f} ± {p['gold_se']:.3f} | {p['gold'] - base:+.3f} | {_number(p['train_loss'], 4)} |"
            )
    lines += [
        "",
        "Fit of the gain over step 0 with R(d) = d·(α − β·log d), d = sqrt(KL) (Gao et al. 2022's RL form, "
        "which Rafailov et al. 2024 fit to DAAs); d* = exp(α/β − 1) is where the fitted curve peaks.",
        "",
        "| variant | α | β_fit | R² | d* (peak) | KL at d* | gain at d* | best checkpoint (step, gain) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, curve in result["curves"].items():
        fit, points = curve["fit"], curve["points"]
        base = points[0]["gold"]
        best = max(points, key=lambda p: p["gold"])
        best_text = f"{best['step']}, {best['gold'] - base:+.3f}"
        if fit is None:
            lines.append(f"| {name} | – | – | – | – | – | – | {best_text} |")
            continue
        peak = fit["peak_d"]
        lines.append(
            f"| {name} | {fit['alpha']:.3f} | {fit['beta']:.3f} | {_number(fit['r2'])} | {_number(peak)} | "
            f"{_number(None if peak is None else peak**2)} | {_number(fit['peak_gain'])} | {best_text} |"
        )
    seconds = sum(c["seconds"] for c in result["curves"].values())
    lines += ["", f"Training and measuring took {seconds:.0f} s in all.", ""]
    return "\n".join(lines)


def daa_overopt_png(result: dict[str, Any]) -> bytes:
    """Gold reward gain against sqrt(KL), one curve per variant, its fitted form dashed."""
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.subplots()
    for index, (name, curve) in enumerate(result["curves"].items()):
        points = curve["points"]
        d = [p["sqrt_kl"] for p in points]
        gains = [p["gold"] - points[0]["gold"] for p in points]
        ax.plot(d, gains, "o-", color=f"C{index}", label=name, markersize=3)
        if curve["fit"] is not None and max(d) > 0:
            grid = np.linspace(0, max(d), 100)
            ax.plot(grid, gold_form(grid, curve["fit"]["alpha"], curve["fit"]["beta"]), "--", color=f"C{index}")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(
        title="gold reward along DAA training (dashed: fitted d·(α − β·log d))",
        xlabel="d = sqrt(KL(π‖π_ref)) (sqrt nats)",
        ylabel="gold reward − step 0",
    )
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def write_daa_overopt_report(result: dict[str, Any], directory: str | Path) -> tuple[Path, Path, Path]:
    directory = Path(directory)
    paths = (directory / FILES[0], directory / FILES[1], directory / FILES[2])
    write_text_atomic(paths[0], json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(paths[1], render_daa_markdown(result))
    write_bytes_atomic(paths[2], daa_overopt_png(result))
    return paths
