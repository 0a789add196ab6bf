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
    if "kl_optimal" in result:
        lines += render_kl_optimal_markdown(result)
    cache = result["cache"]
    lines += [
        "",
        f"Generation: {cache['generation_seconds']} s ({cache['reused_prompts']} of {result['prompts']} prompts "
        f"read from the cache `{cache['path']}`); scoring: {result['scoring_seconds']} s.",
        "",
    ]
    return "\n".join(lines)


def render_kl_optimal_markdown(result: dict) -> list[str]:
    """The KL-optimal tilt beside best-of-N of the same rule: the gap the optimum leaves, per N."""
    tilt, kl = result["kl_optimal"], result["kl"]
    bon = result["curves"][tilt["rule"]]
    lines = [
        "",
        f"## Best-of-N against the KL-constrained optimum ({tilt['rule']})",
        "",
        "The optimum of max E_φ[sel] s.t. KL(φ ‖ π) ≤ KL_bon(N) is the tilt φ ∝ π·exp(λ·sel) (Yang et al. 2024), "
        "here of each prompt's empirical distribution over its n replies. *gap* is tilt − best-of-N; "
        "*gain ratio* is (tilt − N=1) / (best-of-N − N=1) of the selecting score, which Yang et al. prove "
        "tends to 1 for long replies with log N ∝ length (memoryless policy, linear reward). "
        "*sel at sample KL* spends the KL that the best-of-N estimator's own weights have on the n samples "
        "(log n at N = n): the optimum there is never below best-of-N's sel. At KL_bon(N) the tilt can fall "
        "below best-of-N: the estimator spends more than KL_bon(N) on the n samples, and no reweighting of n "
        "samples reaches replies none of them is, so with few samples per prompt read the gap at sample KL.",
        "",
        "| N | KL_bon | best-of-N sel | tilt sel | gap sel | gain ratio | sample KL | tilt sel at sample KL "
        "| best-of-N gold | tilt gold | gap gold |",
        "|" + "---|" * 11,
    ]
    for n in shown_n(len(kl)):
        i = n - 1
        bon_gain, tilt_gain = bon["proxy"][i] - bon["proxy"][0], tilt["proxy"][i] - tilt["proxy"][0]
        ratio = f"{tilt_gain / bon_gain:.3f}" if abs(bon_gain) > 1e-12 else "–"
        cells = [
            str(n),
            f"{kl[i]:.2f}",
            f"{bon['proxy'][i]:.3f}",
            f"{tilt['proxy'][i]:.3f}",
            f"{tilt['proxy'][i] - bon['proxy'][i]:+.3f}",
            ratio,
            f"{tilt['sample_kl'][i]:.2f}",
            f"{tilt['proxy_at_sample_kl'][i]:.3f}",
            f"{bon['gold'][i]:.3f}",
            f"{tilt['gold'][i]:.3f} ± {tilt['gold_gain_se'][i]:.3f}",
            f"{tilt['gold'][i] - bon['gold'][i]:+.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
    if "kl_optimal" in result:
        tilt = result["kl_optimal"]
        label = f"KL-optimal (tilt) of {tilt['rule']}"
        selected.plot(kl, [v - tilt["proxy"][0] for v in tilt["proxy"]], ":", color="C9", label=label)
        judged.plot(kl, [v - tilt["gold"][0] for v in tilt["gold"]], ":", color="C9", label=label)
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
