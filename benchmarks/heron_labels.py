"""HERON's hierarchical labels against a simulated human's pairwise labels, with the same label budget.

For each of ``--mdps`` random delivery gridworlds (true reward ``DELIVERY_WEIGHTS``), ``max(--counts)`` pairs of
equal-length segments are sampled once (random starts, random actions) and labelled three ways: by HERON's
hierarchy over the features (``--order``, most important first; no weights needed), and by a simulated human
who draws each label from the partial-return or the regret model under the true reward. For each budget n a
linear reward is learned from the first n labels of each kind: HERON's and the partial-return human's with the
partial-return Bradley-Terry learner, the regret human's with the regret learner (its matched model) and
also with the partial-return learner. The measure is the normalized return, under the true reward, of the
learned reward's optimal policy; mean and Student-t 95 % interval over the MDPs.

    OMP_NUM_THREADS=1 python benchmarks/heron_labels.py --output /tmp/m26/heron
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
from rewardlab.control.heron import DEFAULT_ORDER, heron_preferences, parse_factors
from rewardlab.control.mdp import DELIVERY_WEIGHTS, random_gridworld
from rewardlab.control.preference_models import label_pairs, sample_segment_pairs
from rewardlab.control.reward_learning import greedy_normalized_return, learn_linear_reward
from rewardlab.evaluate.cv_report import t_interval
from rewardlab.progress import progress_bar

SETUPS = [
    ("heron", "partial_return"),
    ("partial_return", "partial_return"),
    ("regret", "regret"),
    ("regret", "partial_return"),
]
"""(who labels, which model learns)."""


@dataclass
class Settings:
    mdps: int = 10
    size: int = 5
    counts: list[int] = field(default_factory=lambda: [30, 100, 300])
    segment_length: int = 3
    temperature: float = 1.0
    order: str = DEFAULT_ORDER
    steps: int = 200
    lr: float = 0.1
    l2: float = 1e-3
    seed: int = 0


def run(settings: Settings) -> dict[str, Any]:
    weights = np.array(DELIVERY_WEIGHTS)
    values: dict[str, dict[int, list[float]]] = {f"{a} → {b}": {n: [] for n in settings.counts} for a, b in SETUPS}
    equal_share: list[float] = []
    started = time.perf_counter()
    with progress_bar(True, "fits", settings.mdps * len(SETUPS) * len(settings.counts)) as advance:
        for i in range(settings.mdps):
            rng = np.random.default_rng([settings.seed, i])
            mdp = random_gridworld(rng, settings.size)
            pairs = sample_segment_pairs(mdp, max(settings.counts), settings.segment_length, rng)
            labels = {
                "heron": heron_preferences(mdp, pairs, parse_factors(settings.order, mdp.feature_names)),
                **{
                    m: label_pairs(mdp, pairs, weights, m, rng, settings.temperature)
                    for m in ("partial_return", "regret")
                },
            }
            equal_share.append(float(np.mean([r.preferred == "equal" for r in labels["heron"]])))
            for labeller, learner in SETUPS:
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
    return {
        "settings": asdict(settings),
        "rows": rows,
        "heron_equal_share": asdict(t_interval(equal_share)),
        "seconds": time.perf_counter() - started,
    }


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    counts = s["counts"]
    lines = [
        f"normalized return of the learned reward's optimal policy, mean (95 % t-interval) over {s['mdps']} random "
        f"{s['size']}×{s['size']} gridworlds, same pairs for every labeller; setup = labels → learner; "
        f"HERON order {s['order']!r}",
        "",
        "| setup | " + " | ".join(f"n = {n}" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for setup, by_n in results["rows"].items():
        cells = [f"{c['mean']:.3f} ({c['low']:.3f}–{c['high']:.3f})" for c in (by_n[str(n)] for n in counts)]
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    lines.append(f"\nshare of HERON labels 'equal': {results['heron_equal_share']['mean']:.3f}")
    lines.append(f"wall time {results['seconds']:.0f} s")
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
    parser.add_argument("--order", default=defaults.order)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--l2", type=float, default=defaults.l2)
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
