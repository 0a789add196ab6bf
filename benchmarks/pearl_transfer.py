"""PEARL on gridworlds: can preferences labelled in one layout teach a reward for another?

Per seed, a source and a target task are two ``random_gridworld`` layouts with the same cell kinds (so the
same true reward, Knox et al.'s delivery weights). Segments are ``--segment-length`` steps from a random
start, each step optimal or, with probability 1/2, random. Source pairs get labels from a simulated
person: Bradley-Terry on partial returns, P(a ≻ b) = σ(R_a − R_b) (Knox et al. 2022), sampled. Every row
learns a linear reward from ``--target-pairs`` target pairs (or none) and is scored by the
``normalized_return`` of its greedy policy under the target's true reward (1 optimal, 0 random):

- ``pearl``: labels transferred by the Gromov-Wasserstein plan (CPA), robust Gaussian reward (RRL);
- ``cpa + bt``: the same soft labels, plain Bradley-Terry (σ ≡ 0, same optimiser: is RRL doing anything?);
- ``source reward``: no transfer; Bradley-Terry on the source pairs, its weights used on the target;
- ``source reward, permuted features``: the same, when the target's feature columns come in an unknown
  order (the cross-task case PEARL is for: nothing says which target feature is which source feature).
  CPA's distances, and so every other row, are unchanged by that permutation (Euclidean distances, and
  Adam from zero is per-coordinate, so each fit is permutation-equivariant), so only this row is rerun;
- ``random labels``: the target pairs with coin-flip labels, plain Bradley-Terry;
- ``oracle``: the target pairs with labels from the simulated person, plain Bradley-Terry.

Plain Bradley-Terry on hard labels is the library's ``learn_linear_reward``; labels are simulated by
``preference_models.label_pairs`` (partial-return model) and segments drawn by its ``sample_segment``.

Also reported: how often the transferred label's side agrees with the target's true partial returns.

    OMP_NUM_THREADS=1 python benchmarks/pearl_transfer.py --output /tmp/pearl --seeds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rewardlab.atomic import write_text_atomic
from rewardlab.control.mdp import DELIVERY_WEIGHTS, TabularMDP, greedy_policy, random_gridworld, value_iteration
from rewardlab.control.pearl import fit_robust_reward, segment_features, transfer_preferences
from rewardlab.control.preference_models import label_pairs, sample_segment
from rewardlab.control.reward_learning import greedy_normalized_return, learn_linear_reward
from rewardlab.control.segments import Segment, SegmentPreference
from rewardlab.evaluate.cv_report import t_interval
from rewardlab.progress import progress_bar

TRUE = np.array(DELIVERY_WEIGHTS)
ROWS = ("pearl", "cpa + bt", "source reward", "source reward, permuted features", "random labels", "oracle")


@dataclass
class Settings:
    seeds: int = 10
    size: int = 5
    segment_length: int = 6
    source_segments: int = 80
    source_pairs: int = 200
    target_segments: int = 80
    target_pairs: int = 100
    epsilon: float = 0.01
    kl_coef: float = 1.0
    fit_steps: int = 300


def segments(mdp: TabularMDP, rng: np.random.Generator, n: int, length: int) -> list[Segment]:
    """``n`` segments from random live starts, each step the optimal action or, with probability ½, a random one."""
    optimal = greedy_policy(value_iteration(mdp, mdp.reward(TRUE))[1])
    return [sample_segment(mdp, length, rng, optimal, epsilon=0.5) for _ in range(n)]


def random_pairs(items: list[Segment], n: int, rng: np.random.Generator) -> list[tuple[Segment, Segment]]:
    picks = [rng.choice(len(items), size=2, replace=False) for _ in range(n)]
    return [(items[i], items[j]) for i, j in picks]


def partial_return(mdp: TabularMDP, segment: Segment) -> float:
    return float(segment_features(mdp, segment).sum(0) @ TRUE)


def run_seed(seed: int, s: Settings) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    source, target = random_gridworld(rng, s.size), random_gridworld(rng, s.size)
    source_segments = segments(source, rng, s.source_segments, s.segment_length)
    source_prefs = label_pairs(source, random_pairs(source_segments, s.source_pairs, rng), TRUE, "partial_return", rng)
    target_pairs = random_pairs(segments(target, rng, s.target_segments, s.segment_length), s.target_pairs, rng)
    transfer = transfer_preferences(source_prefs, source, target_pairs, target, epsilon=s.epsilon)
    true_gap = np.array([partial_return(target, a) - partial_return(target, b) for a, b in target_pairs])
    decided = (true_gap != 0) & (transfer.labels != 0.5)
    agree = float(np.mean((transfer.labels[decided] > 0.5) == (true_gap[decided] > 0))) if decided.any() else np.nan
    coin = [SegmentPreference(a, b, "a" if rng.random() < 0.5 else "b") for a, b in target_pairs]
    oracle = label_pairs(target, target_pairs, TRUE, "partial_return", rng)
    source_w = learn_linear_reward(source, source_prefs, steps=s.fit_steps)
    permutation = rng.permutation(target.n_features)
    while np.array_equal(permutation, np.arange(target.n_features)):
        permutation = rng.permutation(target.n_features)
    # φ[..., perm]·w = φ·w[perm⁻¹]: the source weights read against features in another order
    permuted_w = source_w[np.argsort(permutation)]
    fit = {"steps": s.fit_steps}
    pearl_w = fit_robust_reward(target, transfer.preferences, transfer.labels, kl_coef=s.kl_coef, **fit).weights
    cpa_bt_w = fit_robust_reward(target, transfer.preferences, transfer.labels, gaussian=False, **fit).weights
    weights = {
        "pearl": pearl_w,
        "cpa + bt": cpa_bt_w,
        "source reward": source_w,
        "source reward, permuted features": permuted_w,
        "random labels": learn_linear_reward(target, coin, steps=s.fit_steps),
        "oracle": learn_linear_reward(target, oracle, steps=s.fit_steps),
    }
    row = {name: greedy_normalized_return(target, w, TRUE) for name, w in weights.items()}
    return {**row, "transfer agreement": agree, "evidence-free pairs": float(np.mean(transfer.weights == 0))}


def markdown(results: dict[str, list[float]], s: Settings, seconds: float) -> str:
    lines = [
        f"PEARL transfer, {s.seeds} seeds (source/target layout pairs), {s.size}×{s.size} grids, "
        f"{s.source_pairs} source pairs, {s.target_pairs} target pairs, ε = {s.epsilon}; {seconds:.0f} s",
        "",
        "| row | mean (95 % t-interval over seeds) | median | seeds ≥ 0.9 |",
        "|---|---|---|---|",
    ]
    for name in (*ROWS, "transfer agreement", "evidence-free pairs"):
        values = np.array([v for v in results[name] if not np.isnan(v)])
        t = t_interval(values)
        share = f"{np.mean(values >= 0.9):.2f}" if name in ROWS else "–"
        lines.append(f"| {name} | {t.mean:.3f} ({t.low:.3f} – {t.high:.3f}) | {np.median(values):.3f} | {share} |")
    lines += [
        "",
        "The first six rows are normalized returns (1 optimal, 0 uniform-random; a policy that loops forever",
        "short of the goal goes far below 0, hence the median). Transfer agreement: share of target pairs whose",
        "transferred label picks the side with the higher true partial return.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    for name, default in asdict(Settings()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in asdict(Settings())})
    started = time.monotonic()
    results: dict[str, list[float]] = {}
    with progress_bar(True, "seeds", settings.seeds) as advance:
        for seed in range(settings.seeds):
            for key, value in run_seed(seed, settings).items():
                results.setdefault(key, []).append(value)
            advance()
    seconds = time.monotonic() - started
    table = markdown(results, settings, seconds)
    args.output.mkdir(parents=True, exist_ok=True)
    payload = {"settings": asdict(settings), "per_seed": results, "seconds": seconds}
    write_text_atomic(args.output / "pearl_transfer.json", json.dumps(payload, indent=2))
    write_text_atomic(args.output / "pearl_transfer.md", table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
