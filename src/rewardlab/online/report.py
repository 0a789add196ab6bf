"""The online run's report: one row per round (round 0 is the starting policy), as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic
from rewardlab.online.config import OnlineConfig

LENGTH_CONTROL = (
    "σ(θ₀) of a ridge logistic regression of the win (1, ½, 0) on tanh(Δtokens / s): the predicted win rate "
    "of two replies of equal length (AlpacaEval 2's length control without its instruction term; online/evaluation.py)"
)


def round_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one round's summary that the table shows."""
    e = summary["evaluation"]
    return {
        "round": summary["round"],
        "pairs": summary.get("pairs"),
        "mean_reward": e.get("mean_reward"),
        "win_rate": e.get("win_rate"),
        "length_controlled_win_rate": e.get("length_controlled_win_rate"),
        "kl": e.get("kl"),
        "mean_reply_tokens": e.get("mean_reply_tokens"),
        "seconds": summary.get("seconds"),
        "generate_tokens_per_s": _rate(summary),
        "last_loss": summary.get("last_loss"),
    }


def build_report(config: OnlineConfig, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "policy": config.policy,
        "loss": config.train.loss,
        "loss_args": config.train.loss_args,
        "judge": {"kind": config.judge.kind, "model": config.judge.model},
        "pairs": config.pairs.strategy,
        "reference": config.reference,
        "lora": config.lora.enabled,
        "replies_per_prompt": config.generate.k,
        "train_prompts": config.data.train_prompts,
        "evaluator": config.eval.evaluator,
        "eval_decoding": "greedy"
        if config.eval.temperature == 0
        else f"sampled, temperature {config.eval.temperature}",
        "held_out_prompts": rounds[0]["evaluation"]["prompts"],
        "length_controlled_definition": LENGTH_CONTROL,
        "rounds": [round_row(r) for r in rounds],
    }


def render_markdown(report: dict[str, Any]) -> str:
    args = f" {report['loss_args']}" if report["loss_args"] else ""
    judge_model = f" {report['judge']['model']}" if report["judge"]["model"] else ""
    lines = [
        "# Online alignment",
        "",
        f"Policy `{report['policy']}`, update `{report['loss']}`{args}, "
        f"judge `{report['judge']['kind']}`{judge_model}, "
        f"pairs `{report['pairs']}`, reference `{report['reference']}`, {report['replies_per_prompt']} replies "
        f"per prompt; measured on {report['held_out_prompts']} held-out prompts ({report['eval_decoding']}) by "
        f"{'`' + report['evaluator'] + '`' if report['evaluator'] else 'no evaluator (lengths and KL only)'}.",
        "",
        "| round | pairs | held-out reward | win rate vs start (95 % CI) | LC win rate | KL(π‖π_start) "
        "| reply tokens | seconds | sampled tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rounds"]:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    lines += ["", f"Length-controlled win rate: {report['length_controlled_definition']}.", ""]
    return "\n".join(lines)


def write_report(out: Path, config: OnlineConfig, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    report = build_report(config, rounds)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", render_markdown(report))
    return report


def _cells(row: dict[str, Any]) -> list[str]:
    win, kl, seconds = row["win_rate"], row["kl"], row["seconds"]
    return [
        str(row["round"]),
        "—" if row["pairs"] is None else str(row["pairs"]),
        _number(row["mean_reward"]),
        "—" if win is None else f"{win['rate']:.3f} ({win['low']:.3f}–{win['high']:.3f}, n={win['n']})",
        _number(row["length_controlled_win_rate"]),
        "—" if kl is None else f"{kl['kl']:.3f} ± {kl['std_error']:.3f}",
        _number(row["mean_reply_tokens"], 1),
        "—" if not seconds else f"{sum(seconds.values()):.0f}",
        _number(row["generate_tokens_per_s"], 1),
    ]


def _rate(summary: dict[str, Any]) -> float | None:
    """Tokens of the round's sampled replies per second of sampling (``round-N/sampling.json``)."""
    seconds = (summary.get("seconds") or {}).get("generate")
    tokens = summary.get("generated_tokens")
    return tokens / seconds if tokens and seconds else None


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
