"""``report.md`` of a ``rewardlab dpo`` run, from the same dictionary as ``report.json``."""

from __future__ import annotations

from typing import Any


def _estimate(e: dict[str, Any]) -> str:
    return f"{e['accuracy']:.4f} (95 % CI {e['ci_low']:.4f}–{e['ci_high']:.4f}, n={e['n']})"


def _convex_da_line(convex: dict[str, Any]) -> str:
    return (
        f"- ConvexDA: {convex['added']} synonym rewrites (hull vertices, encoder {convex['encoder']}) "
        f"added to {convex['source_pairs']} training pairs"
    )


def render_report(report: dict[str, Any]) -> str:
    data, held = report["data"], report["held_out"]
    args = ", ".join(f"{k}={v}" for k, v in report["loss_args"].items()) or "defaults"
    lines = [
        f"# DPO-family run: {report['loss']} on {report['policy']}",
        "",
        f"- data: {data['path']} ({data['pairs']} pairs; {data['train_pairs']} trained on, "
        f"{data['test_pairs']} held out from the {data.get('evaluated_on', 'test')} split; split {data['split']})",
        f"- loss: {report['loss']} ({args}); {report['steps']} steps in {report['train_seconds']:.1f} s "
        f"({report.get('precision', 'fp32')} passes); "
        f"peak memory {report['peak_rss_mb']:.0f} MB",
        *([f"- LoRA: {report['lora']}"] if report.get("lora") else []),
        *([f"- guide model: {report['guide_model']}"] if report.get("guide_model") else []),
        *([_convex_da_line(data["convex_da"])] if data.get("convex_da") else []),
        f"- training loss: {report['first_loss']:.4f} at step 1 → {report['last_loss']:.4f} at the last step",
        "",
        "## Held-out pairs",
        "",
        "| measure | value |",
        "|---|---|",
        f"| implicit-reward accuracy (log π/π_ref of chosen > of rejected) | {_estimate(held['implicit_accuracy'])} |",
        f"| ranking accuracy, trained (log π(chosen) > log π(rejected)) | {_estimate(held['ranking_accuracy'])} |",
        f"| ranking accuracy, base policy | {_estimate(held['base_ranking_accuracy'])} |",
        f"| mean implicit margin ρ_w − ρ_l | {held['mean_implicit_margin']:.4f} |",
        "",
        "Ties count 1/2; intervals are 95 % percentile bootstraps over pairs.",
    ]
    if "sampled_kl" in report:
        k = report["sampled_kl"]
        lines += [
            "",
            "## KL from the base policy",
            "",
            f"KL(π‖π_ref) = {k['kl']:.4f} ± {k['std_error']:.4f} nats per reply (mean of log π(y|x) − log π_ref(y|x) "
            f"over {k['samples_per_prompt']} replies sampled from the trained policy for each of {k['prompts']} "
            f"held-out prompts, temperature 1, at most {k['max_new_tokens']} tokens, {k['mean_reply_tokens']:.1f} "
            "on average; ± one standard error).",
            "",
            "`logratio_data` in `metrics.jsonl` is the same log-ratio on the training batch's own replies: "
            "not a KL (those replies were not sampled from the policy), it may go negative.",
        ]
    if "win_rate" in report:
        w = report["win_rate"]
        lines += [
            "",
            "## Win rate over the base policy",
            "",
            f"Judge: {w['judge']}; {len(w['samples'])} held-out prompts, {w['decoding']}, "
            f"at most {w['max_new_tokens']} new tokens.",
            "",
            f"Win rate of the trained policy: {_estimate(w['win_rate'])}",
        ]
    return "\n".join(lines) + "\n"
