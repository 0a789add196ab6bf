"""The self-consuming loop on a generator trained here: reward rises, diversity falls, unless real data is mixed in.

Ferbach et al. 2024 (*Self-Consuming Generative Models with Curated Data Provably Optimize Human
Preferences*). A ``StringModel`` (strings of 6 tokens over 4, 4,096 strings in all) is trained on
2,000 strings from a known Markov source, then retrained for ``--rounds`` rounds on its own samples:
each kept string is a Bradley-Terry choice among K = 4 draws under the known reward r(x) = the number
of token 0 (0 … 6). Conditions: λ = 0 (pure self-consumption), λ = 0.25 and 0.5 of each round's data
replaced by real strings, and K = 1 (retraining on its own samples without curation, the control).
Every metric is exact over all 4,096 strings (expected reward, entropy, TV to the data) except the
fraction of distinct strings among 2,000 samples. Intervals: 95 % t-intervals over the seeds.
Dashed: the same loop with infinitely many samples and perfect retraining, from the data
(``exact_rounds``). Writes JSON and a PNG (atomic):

    python benchmarks/self_consuming.py [--rounds 10] [--seeds 5] [--output benchmarks/results]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats

from rewardlab.atomic import write_bytes_atomic, write_text_atomic
from rewardlab.curation.self_consuming import (
    SelfConsumingConfig,
    count_reward,
    entropy,
    exact_rounds,
    markov_source,
    run_self_consuming,
)
from rewardlab.curation.string_model import all_strings, markov_log_probs

CONDITIONS = {
    "λ = 0 (pure self-consumption)": {"real_fraction": 0.0},
    "λ = 0.25 real data": {"real_fraction": 0.25},
    "λ = 0.5 real data": {"real_fraction": 0.5},
    "K = 1 (no curation)": {"k": 1},
}
METRICS = ("expected_reward", "entropy", "distinct", "tv_to_data")


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def theory(config: SelfConsumingConfig) -> dict[str, list[float]]:
    """The exact loop from the data distribution, for the condition's k and λ."""
    space = all_strings(config.vocab, config.length)
    rewards = count_reward(space, config.reward_token)
    data = markov_log_probs(space, *markov_source(config.vocab, config.stay)).exp()
    history = exact_rounds(data, rewards, config.rounds, config.k, config.choice, data, config.real_fraction)
    return {"expected_reward": [float(p @ rewards) for p in history], "entropy": [entropy(p) for p in history]}


def run(rounds: int, seeds: int, samples: int) -> dict:
    result: dict = {"rounds": rounds, "seeds": seeds, "samples": samples, "conditions": {}}
    for name, overrides in CONDITIONS.items():
        base = SelfConsumingConfig(rounds=rounds, samples=samples, **overrides)  # type: ignore[arg-type]
        started = time.perf_counter()
        runs = []
        for seed in range(seeds):
            config = SelfConsumingConfig(**{**base.__dict__, "seed": seed})
            runs.append([row.to_dict() for row in run_self_consuming(config)])
        summary = {metric: [interval([r[t][metric] for r in runs]) for t in range(rounds + 1)] for metric in METRICS}
        result["conditions"][name] = {
            "config": base.__dict__,
            "summary": summary,
            "theory": theory(base),
            "runs": runs,
            "seconds_per_run": (time.perf_counter() - started) / seeds,
        }
        reward, spread = summary["expected_reward"][-1][0], summary["entropy"][-1][0]
        seconds = result["conditions"][name]["seconds_per_run"]
        print(f"{name}: final reward {reward:.3f}, entropy {spread:.3f} ({seconds:.1f} s a run)")
    return result


def plot(result: dict) -> bytes:
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    axes = figure.subplots(1, 3)
    titles = {
        "expected_reward": "expected reward E_p[r] (max 6)",
        "entropy": "entropy of the model (nats; data 8.05, max 8.32)",
        "distinct": f"fraction of distinct strings among {result['samples']:,} samples",
    }
    rounds = list(range(result["rounds"] + 1))
    for index, (name, condition) in enumerate(result["conditions"].items()):
        color = f"C{index}"
        for ax, metric in zip(axes, titles, strict=True):
            mean, low, high = zip(*condition["summary"][metric], strict=True)
            ax.plot(rounds, mean, "-o", color=color, markersize=3, label=name)
            ax.fill_between(rounds, low, high, color=color, alpha=0.2, linewidth=0)
            if metric in condition["theory"]:
                ax.plot(rounds, condition["theory"][metric], "--", color=color, linewidth=0.9)
    for ax, title in zip(axes, titles.values(), strict=True):
        ax.set(title=title, xlabel="round of curated retraining", xticks=rounds)
    axes[0].legend(fontsize=8, title="solid: trained (95 % CI over seeds)\ndashed: exact loop", title_fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--output", default="benchmarks/results", help="folder for self_consuming.json and .png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = run(args.rounds, args.seeds, args.samples)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / "self_consuming.json", json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    write_bytes_atomic(output / "self_consuming.png", plot(result))
    print(f"wrote {output / 'self_consuming.json'} and {output / 'self_consuming.png'}")


if __name__ == "__main__":
    main()
