"""The over-optimisation study on disk: results JSON, a Markdown table and a PNG plot, each written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

from matplotlib.figure import Figure

from rewardlab.atomic import write_bytes_atomic, write_text_atomic
from rewardlab.sampling.overopt import ORACLE


def shown_n(max_n: int) -> list[int]:
    """Powers of two up to ``max_n``, and ``max_n`` itself."""
    values, n = [], 1
    while n < max_n:
        values.append(n)
        n *= 2
    return [*values, max_n]


def peak_n(gold: list[float]) -> int:
    """The N where the expected gold reward is highest (the first, on ties)."""
    return 1 + max(range(len(gold)), key=lambda i: (gold[i], -i))


def render_overopt_markdown(result: dict) -> str:
    curves, kl = result["curves"], result["kl"]
    sampling, replies = result["sampling"], result["replies"]
    lines = [
        "# Best-of-N over-optimisation",
        "",
        f"- policy: `{result['policy']}`, {result['prompts']} prompts × n = {sampling['n']} replies "
        f"(temperature {sampling['temperature']}, ≤ {sampling['max_new_tokens']} new tokens, seed {sampling['seed']}, "
        f"{result['precision']})",
        f"- gold: `{result['gold']}`",
        *(f"- proxy {i}: `{p}`" for i, p in enumerate(result["proxies"], start=1)),
        f"- replies: mean {replies['mean_tokens']:.1f} tokens, "
        f"{replies['finished_fraction']:.0%} ended before the token limit, {replies['empty']} empty",
        "",
        "Expected reward of the reply picked among N (Gao et al. 2022's unbiased estimator over the n samples), "
        "averaged over prompts; KL_bon = log N − (N−1)/N nats. *sel* is the score that picks the reply, "
        "*gold* the gold model's score of that reply (± standard error over prompts).",
        "",
    ]
    names = list(curves)
    header = ["N", "KL_bon"]
    for name in names:
        header += [f"{name} sel", f"{name} gold"] if name != ORACLE else [f"{name}"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n in shown_n(len(kl)):
        cells = [str(n), f"{kl[n - 1]:.2f}"]
        for name in names:
            c = curves[name]
            gold = f"{c['gold'][n - 1]:.3f} ± {c['gold_gain_se'][n - 1]:.3f}"
            cells += [f"{c['proxy'][n - 1]:.3f}", gold] if name != ORACLE else [gold]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| selection | gold gain at N=n | best N for gold | gold gain there | within-prompt r with gold |"]
    lines.append("|---|---|---|---|---|")
    for name in names:
        gold = curves[name]["gold"]
        best = peak_n(gold)
        r = result["within_prompt_correlation_with_gold"].get(name)
        r_text = "1" if name == ORACLE else ("–" if r is None else f"{r:.3f}")
        lines.append(f"| {name} | {gold[-1] - gold[0]:+.3f} | {best} | {gold[best - 1] - gold[0]:+.3f} | {r_text} |")
    cache = result["cache"]
    lines += [
        "",
        f"Generation: {cache['generation_seconds']} s ({cache['reused_prompts']} of {result['prompts']} prompts "
        f"read from the cache `{cache['path']}`); scoring: {result['scoring_seconds']} s.",
        "",
    ]
    return "\n".join(lines)


def overopt_png(result: dict) -> bytes:
    """Left: each selection score's gain over N=1; right: the gold gain of the reply each rule picks."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    selected, judged = figure.subplots(1, 2)
    kl = result["kl"]
    for index, (name, c) in enumerate(result["curves"].items()):
        color = "black" if name == ORACLE else f"C{index}"
        style = "--" if name == ORACLE else "-"
        if name != ORACLE:
            selected.plot(kl, [v - c["proxy"][0] for v in c["proxy"]], style, color=color, label=name)
        gains = [v - c["gold"][0] for v in c["gold"]]
        judged.plot(kl, gains, style, color=color, label=f"picked by {name}")
        low = [g - s for g, s in zip(gains, c["gold_gain_se"], strict=True)]
        high = [g + s for g, s in zip(gains, c["gold_gain_se"], strict=True)]
        judged.fill_between(kl, low, high, color=color, alpha=0.12, linewidth=0)
    selected.set(title="selecting score (proxy)", xlabel="KL_bon = log N − (N−1)/N (nats)", ylabel="gain over N = 1")
    judged.set(
        title="gold reward of the picked reply (± s.e. of the gain)", xlabel="KL_bon (nats)", ylabel="gain over N = 1"
    )
    for ax in (selected, judged):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def write_overopt_report(result: dict, directory: str | Path) -> tuple[Path, Path, Path]:
    directory = Path(directory)
    paths = (directory / "overopt.json", directory / "overopt.md", directory / "overopt.png")
    write_text_atomic(paths[0], json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(paths[1], render_overopt_markdown(result))
    write_bytes_atomic(paths[2], overopt_png(result))
    return paths
