"""CVaR-optimal vs mean-optimal policies on slippery gridworlds with hazards (Ávila Pires et al. 2025's
stock-augmented distributional DP; Rockafellar & Uryasev's CVaR).

For each layout (``RISK_LAYOUTS``: a cliff, a bridge between hazards, a ledge with a long detour) and slip, plan
the mean-optimal policy and the CVaR_α-optimal policy for each α over a finite horizon under the delivery
reward (−1 a step, +50 the goal, −50 a hazard; γ = 1), then roll each out ``--episodes`` times per seed, for
``--seeds`` seeds, and report the mean, CVaR_0.1 and CVaR_0.25 of the returns with 95 % percentile-bootstrap
intervals, beside the exact values from the policy's return distribution and the programme's own optimum.

    python benchmarks/distributional_cvar.py --output /tmp/m26/cvar            # the full grid
    python benchmarks/distributional_cvar.py --output /tmp/x --layouts bridge --slips 0.01 --episodes 500
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.atomic import write_text_atomic
from rewardlab.control.distributional import (
    Plan,
    cvar_interval,
    cvar_of_distribution,
    cvar_optimal_policy,
    mean_optimal_policy,
    return_distribution,
    return_samples,
    transition_rewards,
)
from rewardlab.control.environments import LAYOUTS, RISK_LAYOUTS
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld
from rewardlab.progress import progress_bar


@dataclass
class Settings:
    layouts: list[str] = field(default_factory=lambda: list(RISK_LAYOUTS))
    slips: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.05, 0.1])
    alphas: list[float] = field(default_factory=lambda: [0.1, 0.25])
    horizon: int = 40
    gamma: float = 1.0
    episodes: int = 10_000
    seeds: int = 3
    resamples: int = 2000


def plans_for(mdp: Any, reward: np.ndarray, settings: Settings) -> dict[str, Plan]:
    plans = {"mean-optimal": mean_optimal_policy(mdp, reward, settings.horizon)}
    for alpha in settings.alphas:
        plans[f"CVaR_{alpha:g}-optimal"] = cvar_optimal_policy(mdp, reward, alpha, settings.horizon)
    return plans


def measure(mdp: Any, plan: Plan, reward: np.ndarray, settings: Settings) -> dict[str, Any]:
    """Rollout estimates (pooled over seeds, each seed its own stream) with intervals, and the exact values."""
    samples = np.concatenate(
        [
            return_samples(mdp, plan.policy, reward, settings.episodes, np.random.default_rng(s))
            for s in range(settings.seeds)
        ]
    )
    values, probs = return_distribution(mdp, plan.policy, reward)
    row: dict[str, Any] = {"dp_value": plan.value, "objective": plan.objective, "var": plan.var, "n": samples.size}
    for alpha in [1.0, *settings.alphas]:
        name = "mean" if alpha == 1.0 else f"cvar_{alpha:g}"
        estimate = cvar_interval(samples, alpha, resamples=settings.resamples)
        row[name] = {
            "rollouts": estimate.cvar,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "exact": cvar_of_distribution(values, probs, alpha),
        }
    row["per_seed"] = {  # the spread over seeds of each statistic, each seed's rollouts alone
        name: [float(cvar_interval(chunk, a, resamples=1).cvar) for chunk in np.split(samples, settings.seeds)]
        for name, a in [("mean", 1.0)] + [(f"cvar_{a:g}", a) for a in settings.alphas]
    }
    # ending in a hazard returns −50 − (steps) ≤ −51 and anything else ≥ −H: told apart while γ = 1 and H ≤ 50
    exact_fall = settings.gamma == 1.0 and settings.horizon <= 50
    row["p_hazard"] = float(probs[values < -settings.horizon].sum()) if exact_fall else None
    return row


def run(output: Path, settings: Settings) -> dict[str, Any]:
    output.mkdir(parents=True, exist_ok=True)
    weights = np.array(DELIVERY_WEIGHTS)
    started = time.perf_counter()
    rows = []
    configs = [(layout, slip) for layout in settings.layouts for slip in settings.slips]
    with progress_bar(True, "layouts × slips", len(configs)) as advance:
        for layout, slip in configs:
            mdp = gridworld(LAYOUTS[layout], gamma=settings.gamma, slip=slip)
            reward = transition_rewards(mdp, weights)
            for name, plan in plans_for(mdp, reward, settings).items():
                rows.append({"layout": layout, "slip": slip, "policy": name, **measure(mdp, plan, reward, settings)})
            advance(layout=layout, slip=slip)
    results = {"settings": asdict(settings), "rows": rows, "wall_s": time.perf_counter() - started}
    write_text_atomic(output / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(output / "results.md", render(results))
    return results


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    stats = ["mean"] + [f"cvar_{a:g}" for a in settings["alphas"]]
    heads = ["mean"] + [f"CVaR_{a:g}" for a in settings["alphas"]]
    lines = [
        f"horizon {settings['horizon']}, γ = {settings['gamma']}, {settings['episodes']} rollouts × "
        f"{settings['seeds']} seeds per policy; rollout estimate (95 % bootstrap interval) [exact]",
        "",
        "| layout | slip | policy | " + " | ".join(heads) + " | DP optimum | P(hazard) |",
        "|---|---|---|" + "---|" * (len(heads) + 2),
    ]
    for row in results["rows"]:
        cells = [
            f"{row[s]['rollouts']:.2f} ({row[s]['ci_low']:.2f} to {row[s]['ci_high']:.2f}) [{row[s]['exact']:.2f}]"
            for s in stats
        ]
        lines.append(
            f"| {row['layout']} | {row['slip']:g} | {row['policy']} | "
            + " | ".join(cells)
            + f" | {row['dp_value']:.2f} | {_share(row['p_hazard'])} |"
        )
    lines += ["", f"wall time {results['wall_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def _share(p: float | None) -> str:
    return "–" if p is None else f"{p:.4f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for results.json and results.md")
    parser.add_argument("--layouts", nargs="+", choices=sorted(RISK_LAYOUTS), default=list(RISK_LAYOUTS))
    parser.add_argument("--slips", nargs="+", type=float, default=Settings().slips)
    parser.add_argument("--alphas", nargs="+", type=float, default=Settings().alphas)
    for name in ("horizon", "episodes", "seeds", "resamples"):
        parser.add_argument(f"--{name}", type=int, default=getattr(Settings(), name))
    parser.add_argument("--gamma", type=float, default=Settings().gamma)
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in asdict(Settings())})
    results = run(args.output, settings)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
