"""DeformPAM's reward-guided action selection on Pendulum-v1: does executing the best of K sampled actions,
as scored by a reward model learned from preferences between actions, beat the raw stochastic policy?

The generative policy stands in for DeformPAM's diffusion policy: a scripted swing-up-and-balance
controller (energy pumping, then a PD law near the top) with Gaussian noise (σ = ``--sigma``) and, with
probability ``--anomaly``, a uniformly random action instead (the anomalous samples selection should
filter). Per seed: at ``--states`` states visited by the noisy policy, two sampled actions are judged by
their true outcome (the true return of the action and ``--horizon`` steps of the noiseless controller
after it, played on a copy of the environment: a person judging an action by its result); a ``RewardNet``
r̂(o, a) is fitted to the judgements (Bradley-Terry); then each K in ``--k`` is played for ``--episodes``
episodes on the same starts. K = 1 is the raw policy.

Rows: true return, mean over seeds with a 95 % Student-t interval across seeds, and the paired difference
to K = 1 (same seeds and starts) with a t-interval across all episodes.

    OMP_NUM_THREADS=1 python benchmarks/deformpam_selection.py --output /tmp/m26/deformpam
    python benchmarks/deformpam_selection.py --output /tmp/x --tiny         # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.control.gym_env import episode_returns
from rewardlab.control.reward_net import RewardTrainConfig, train_reward
from rewardlab.control.selection import action_preferences, reward_scorer, selecting_policy
from rewardlab.evaluate.cv_report import t_interval

ENV = "Pendulum-v1"


@dataclass
class Settings:
    seeds: int = 3
    states: int = 1000
    horizon: int = 10
    sigma: float = 1.0
    anomaly: float = 0.3
    reward_epochs: int = 30
    episodes: int = 10
    k: str = "1,4,16"


def controller(observation: np.ndarray) -> np.ndarray:
    """Swing-up by energy pumping, balance by a PD law: Pendulum's θ̈ = 15 sin θ + 3u (g = 10, m = l = 1),
    so E = θ̇²/2 + 15 cos θ is 15 upright at rest and dE/dt = 3uθ̇: push along θ̇ while E < 15."""
    cos, sin, velocity = (float(x) for x in observation)
    angle = np.arctan2(sin, cos)
    if cos > 0.85:
        torque = -(10.0 * angle + 2.0 * velocity)
    elif 0.5 * velocity**2 + 15.0 * cos < 15.0:
        torque = 2.0 if velocity >= 0 else -2.0
    else:
        torque = 0.0
    return np.clip(np.array([torque], dtype=np.float32), -2.0, 2.0)


def noisy_sampler(settings: Settings, rng: np.random.Generator):
    def sample(observation: np.ndarray, k: int) -> np.ndarray:
        actions = controller(observation) + settings.sigma * rng.normal(size=(k, 1))
        anomalous = rng.random(k) < settings.anomaly
        actions[anomalous] = rng.uniform(-2.0, 2.0, size=(int(anomalous.sum()), 1))
        return np.clip(actions, -2.0, 2.0).astype(np.float32)

    return sample


def run_seed(settings: Settings, seed: int, ks: list[int]) -> dict:
    rng = np.random.default_rng(seed)
    sampler = noisy_sampler(settings, rng)
    prefs = action_preferences(
        ENV, sampler, lambda o: sampler(o, 1)[0], settings.states, settings.horizon, controller, seed=seed
    )
    net = train_reward(prefs, RewardTrainConfig(epochs=settings.reward_epochs, seed=seed), progress=False)
    scorer = reward_scorer(net)
    start = 10_000 + 100 * seed
    row: dict = {"seed": seed, "ties": sum(p.preferred == "equal" for p in prefs)}
    for k in ks:
        row[f"k{k}"] = episode_returns(ENV, selecting_policy(sampler, scorer, k), settings.episodes, seed=start)
    row["controller"] = episode_returns(ENV, controller, settings.episodes, seed=start)
    return row


def summary(rows: list[dict], ks: list[int]) -> dict:
    out = {}
    for name in [f"k{k}" for k in ks] + ["controller"]:
        out[name] = asdict(t_interval([float(np.mean(r[name])) for r in rows]))
        if name != "controller":
            gaps = [a - b for r in rows for a, b in zip(r[name], r[f"k{ks[0]}"], strict=True)]
            out[name]["paired_gap"] = asdict(t_interval(gaps))
    return out


def markdown(settings: Settings, totals: dict, ks: list[int], seconds: float, cpu_seconds: float) -> str:
    lines = [
        f"## Best-of-K action selection by a learned reward ({ENV}, {settings.seeds} seeds × "
        f"{settings.episodes} episodes, {settings.states} judgements per seed)",
        "",
        "| policy | true return (mean over seeds) | 95 % t-interval (seeds) "
        f"| gap to K = {ks[0]} (paired) | 95 % t-interval (episodes) |",
        "|---|---|---|---|---|",
    ]
    for k in ks:
        t, g = totals[f"k{k}"], totals[f"k{k}"]["paired_gap"]
        label = "raw noisy policy (K = 1)" if k == 1 else f"best of K = {k}"
        lines.append(
            f"| {label} | {t['mean']:.1f} | {t['low']:.1f} – {t['high']:.1f} | {g['mean']:+.1f} | "
            f"{g['low']:+.1f} – {g['high']:+.1f} |"
        )
    c = totals["controller"]
    lines.append(f"| noiseless controller (reference) | {c['mean']:.1f} | {c['low']:.1f} – {c['high']:.1f} | | |")
    lines += ["", f"Wall time {seconds / 60:.1f} min, CPU time {cpu_seconds / 60:.1f} min (one thread)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="folder for results.json and results.md")
    parser.add_argument("--tiny", action="store_true", help="a smoke run of a few seconds")
    for f, default in asdict(Settings()).items():
        parser.add_argument(f"--{f.replace('_', '-')}", type=type(default), default=default)
    args = parser.parse_args(argv)
    settings = Settings(**{f: getattr(args, f) for f in asdict(Settings())})
    if args.tiny:
        settings = Settings(seeds=2, states=40, reward_epochs=2, episodes=2, k="1,4")
    ks = [int(k) for k in settings.k.split(",")]
    torch.set_num_threads(1)
    started, cpu_started = time.monotonic(), time.process_time()
    rows = []
    for seed in range(settings.seeds):
        rows.append(run_seed(settings, seed, ks))
        print(f"seed {seed}: " + " ".join(f"K={k} {np.mean(rows[-1][f'k{k}']):.1f}" for k in ks), flush=True)
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    totals = summary(rows, ks)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    result = {
        "settings": asdict(settings),
        "seeds": rows,
        "summary": totals,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }
    write_text_atomic(output / "results.json", json.dumps(result, indent=1) + "\n")
    text = markdown(settings, totals, ks, seconds, cpu_seconds)
    write_text_atomic(output / "results.md", text)
    print(text)


if __name__ == "__main__":
    main()
