"""Plackett-Luce on 4-way rankings vs Bradley-Terry on one pair per prompt: held-out accuracy by prompts.

Synthetic and exact: replies have random features x ∈ R^10, the true reward is x·w (‖w‖ = 2), and
each prompt's four replies are ranked by x·w + Gumbel noise, which makes the rankings Plackett-Luce
distributed (and any two of them Bradley-Terry distributed) under the true reward. Pairs-only keeps
one random pair of the four, in its ranked order. Both fit a linear reward with L-BFGS (L2 1e-3);
held-out accuracy is the fraction of 4,000 new random pairs ordered as the true reward orders them.

    python benchmarks/pl_vs_pairs.py                 # prints the table and appends it to RESULTS.md
    python benchmarks/pl_vs_pairs.py --no-record     # prints only
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.plackett_luce import plackett_luce_loss
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them

FEATURES, REPLIES, REWARD_NORM, L2 = 10, 4, 2.0, 1e-3


def fit_linear_reward(losses: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """θ minimising mean(losses(θ)) + L2·‖θ‖² with L-BFGS (the problem is convex)."""
    theta = torch.zeros(FEATURES, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([theta], max_iter=100, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = losses(theta).mean() + L2 * theta.pow(2).sum()
        value.backward()
        return value

    optimiser.step(closure)
    return theta.detach()


def held_out_accuracy(prompts: int, seed: int) -> tuple[float, float]:
    """(Plackett-Luce, pairs-only Bradley-Terry) accuracy after training on ``prompts`` prompts."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(FEATURES, generator=g, dtype=torch.float64)
    w = REWARD_NORM * w / w.norm()
    x = torch.randn(prompts, REPLIES, FEATURES, generator=g, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(torch.rand(prompts, REPLIES, generator=g, dtype=torch.float64)))
    order = (x @ w + gumbel).argsort(dim=1, descending=True)
    ranked = x.gather(1, order.unsqueeze(2).expand(-1, -1, FEATURES))  # best first
    pick = torch.rand(prompts, REPLIES, generator=g).argsort(dim=1)[:, :2].sort(dim=1).values
    rows = torch.arange(prompts)
    chosen, rejected = ranked[rows, pick[:, 0]], ranked[rows, pick[:, 1]]

    test = torch.randn(4000, FEATURES, generator=torch.Generator().manual_seed(10_000 + seed), dtype=torch.float64)
    truth = test @ w > 0
    pl = fit_linear_reward(lambda theta: plackett_luce_loss(ranked @ theta).losses)
    bt = fit_linear_reward(lambda theta: bradley_terry_loss(chosen @ theta, rejected @ theta).losses)
    return tuple(float(((test @ theta > 0) == truth).double().mean()) for theta in (pl, bt))


def prompts_needed(means: dict[int, tuple[float, float]]) -> str:
    """A sentence: the fewest prompts (of those run) at which each method's mean accuracy reaches a level."""
    parts = []
    for level in (0.8, 0.9, 0.95):
        reached = [min((n for n, m in means.items() if m[i] >= level), default=None) for i in (0, 1)]
        parts.append(f"{level:.2f}: " + " vs ".join("not reached" if n is None else f"{n}" for n in reached))
    return "Prompts needed to reach a mean held-out accuracy (Plackett-Luce vs pairs): " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[5, 10, 20, 40, 80, 160, 320, 640])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    means: dict[int, tuple[float, float]] = {}
    rows = ["| prompts | Plackett-Luce, 4-way rankings | Bradley-Terry, one pair a prompt |", "|---|---|---|"]
    for prompts in args.prompts:
        runs = [held_out_accuracy(prompts, seed) for seed in range(args.seeds)]
        pl, bt = ([r[i] for r in runs] for i in (0, 1))
        cells = [f"{statistics.mean(a):.3f} ± {statistics.stdev(a) / len(a) ** 0.5:.3f}" for a in (pl, bt)]
        means[prompts] = (statistics.mean(pl), statistics.mean(bt))
        rows.append(f"| {prompts} | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    command = shlex.join(["python", "benchmarks/pl_vs_pairs.py", *sys.argv[1:]])
    setup = (
        f"`{command}` ({datetime.date.today().isoformat()}, torch {torch.__version__}, "
        f"{time.perf_counter() - started:.0f} s). Synthetic: linear true reward on {FEATURES} random features, "
        f"{REPLIES} replies a prompt ranked by true reward + Gumbel noise; pairs-only keeps one random pair a "
        "prompt. Held-out accuracy: agreement with the true reward's order on 4,000 new pairs; mean ± standard "
        f"error over {args.seeds} seeds."
    )
    section = [
        "",
        "## Plackett-Luce rankings vs pairs: held-out accuracy by number of prompts",
        "",
        textwrap.fill(setup, width=100),
        "",
        *rows,
        "",
        textwrap.fill(prompts_needed(means), width=100),
        "",
    ]
    print("\n".join(section))
    if not args.no_record:
        with args.results.open("a", encoding="utf-8") as f:
            f.write("\n".join(section))


if __name__ == "__main__":
    main()
