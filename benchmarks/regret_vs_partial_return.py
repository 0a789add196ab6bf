"""Knox et al. 2022's finite-data claim: a reward learned with the regret preference model leads to better
policies than one learned with the partial-return model, from the same number of preferences.

For each of ``--mdps`` random delivery gridworlds (``random_gridworld``, true reward ``DELIVERY_WEIGHTS``):
sample ``max(--counts)`` pairs of equal-length segments from random starts with random actions, label them
once with each preference model (a draw from its P(a ≻ b) under the true reward, temperature ``--temperature``),
and for each count n learn a linear reward from the first n labels. The measure is the normalized return,
under the true reward, of the learned reward's optimal policy (1 optimal, 0 random). Setups ``labels →
learner``: the paper's (each model's labels learned with that model) and, with ``--cross``, the mismatched two.
Mean and Student-t 95 % interval over the MDPs.

    OMP_NUM_THREADS=1 python benchmarks/regret_vs_partial_return.py --output /tmp/m26/regret-vs-pr
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
from rewardlab.control.mdp import DELIVERY_WEIGHTS, random_gridworld
from rewardlab.control.preference_models import label_pairs, sample_segment_pairs
from rewardlab.control.reward_learning import greedy_normalized_return, learn_linear_reward
from rewardlab.evaluate.cv_report import t_interval
from rewardlab.progress import progress_bar

MATCHED = [("partial_return", "partial_return"), ("regret", "regret")]
CROSSED = [("regret", "partial_return"), ("partial_return", "regret")]


@dataclass
class Settings:
    mdps: int = 10
    size: int = 5
    counts: list[int] = field(default_factory=lambda: [10, 30, 100, 300])
    segment_length: int = 3
    temperature: float = 1.0
    steps: int = 200
    lr: float = 0.1
    l2: float = 1e-3
    cross: bool = True
    seed: int = 0


def run(settings: Settings) -> dict[str, Any]:
    weights = np.array(DELIVERY_WEIGHTS)
    setups = MATCHED + (CROSSED if settings.cross else [])
    values: dict[str, dict[int, list[float]]] = {f"{a} → {b}": {n: [] for n in settings.counts} for a, b in setups}
    started = time.perf_counter()
    with progress_bar(True, "fits", settings.mdps * len(setups) * len(settings.counts)) as advance:
        for i in range(settings.mdps):
            rng = np.random.default_rng([settings.seed, i])
            mdp = random_gridworld(rng, settings.size)
            pairs = sample_segment_pairs(mdp, max(settings.counts), settings.segment_length, rng)
            labels = {
                m: label_pairs(mdp, pairs, weights, m, rng, settings.temperature)
                for m in sorted({a for a, _ in setups})
            }
            for labeller, learner in setups:
                for n in settings.counts:
                    learned = learn_linear_reward(
                        mdp, labels[labeller][:n], learner, settings.steps, settings.lr, settings.l2
                    )
                    values[f"{labeller} → {learner}"][n].append(greedy_normalized_return(mdp, learned, weights))
                    advance()
    rows = {
        setup: {str(n): asdict(t_interval(v)) | {"values": v} for n, v in by_n.items()}
        for setup, by_n in values.items()
    }
    return {"settings": asdict(settings), "rows": rows, "seconds": time.perf_counter() - started}


def render(results: dict[str, Any]) -> str:
    counts = results["settings"]["counts"]
    lines = [
        f"normalized return of the learned reward's optimal policy, mean (95 % t-interval) over "
        f"{results['settings']['mdps']} random {results['settings']['size']}×{results['settings']['size']} "
        f"gridworlds; setup = labels → learner",
        "",
        "| setup | " + " | ".join(f"n = {n}" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for setup, by_n in results["rows"].items():
        cells = [f"{c['mean']:.3f} ({c['low']:.3f}–{c['high']:.3f})" for c in (by_n[str(n)] for n in counts)]
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    lines.append(f"\nwall time {results['seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    defaults = Settings()
    parser.add_argument("--mdps", type=int, default=defaults.mdps)
    parser.add_argument("--size", type=int, default=defaults.size)
    parser.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=defaults.counts)
    parser.add_argument("--segment-length", type=int, default=defaults.segment_length)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--l2", type=float, default=defaults.l2)
    parser.add_argument("--no-cross", dest="cross", action="store_false")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = vars(parser.parse_args())
    output = args.pop("output")
    results = run(Settings(**args))
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(output / "results.md", render(results))
    print(render(results))


if __name__ == "__main__":
    main()
