"""Christiano et al.'s loop on a Gymnasium environment: does PPO trained on a reward learned from simulated
segment preferences earn the true return that PPO trained on the true reward earns?

Per seed: segments of random play, judged in pairs by a Bradley-Terry labeller on their true partial
returns (β = ``--rationality``); a ``RewardNet`` fitted to the judgements; its Pearson/Spearman correlation
with the true returns of held-out segments; then PPO (Stable-Baselines3, the RL Zoo's CartPole settings) on
the learned reward and on the true reward, each evaluated by its true return over ``--episodes`` episodes,
and the uniform-random policy on the same starts. Rows: mean over seeds with a 95 % Student-t interval.

    OMP_NUM_THREADS=1 python benchmarks/control_policy.py --output /tmp/m26/control_policy
    python benchmarks/control_policy.py --output /tmp/x --tiny          # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.control.correlation import reward_correlation
from rewardlab.control.gym_env import collect_segments, episode_returns, reward_config, simulate_segment_preferences
from rewardlab.control.policy_training import evaluate_policy_true_return, train_policy
from rewardlab.control.reward_net import RewardTrainConfig, reward_normalisation, train_reward
from rewardlab.evaluate.cv_report import t_interval

PPO_CARTPOLE = {
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 1e-3,
    "clip_range": 0.2,
}
"""rl-baselines3-zoo's PPO settings for CartPole-v1 (with 8 environments), constant learning rate."""


@dataclass
class Settings:
    env: str = "CartPole-v1"
    algorithm: str = "ppo"
    """PPO takes the RL Zoo's CartPole settings on CartPole; any other pairing takes SB3's defaults."""
    seeds: int = 3
    segments: int = 400
    length: int = 25
    pairs: int = 800
    rationality: float = 1.0
    held_out: float = 0.25
    reward_epochs: int = 30
    timesteps: int = 40_000
    n_envs: int = 8
    episodes: int = 20


def run_seed(settings: Settings, seed: int) -> dict:
    segments = collect_segments(settings.env, settings.segments, settings.length, seed=seed)
    cut = int(len(segments) * (1 - settings.held_out))
    prefs = simulate_segment_preferences(segments[:cut], settings.pairs, seed=seed, rationality=settings.rationality)
    net = train_reward(
        prefs, RewardTrainConfig(epochs=settings.reward_epochs, seed=seed), reward_config(settings.env), progress=False
    )
    corr = reward_correlation(net, segments[cut:])
    mean_step, std_step = reward_normalisation(net, [s.segment for s in segments[:cut]])
    row: dict = {
        "seed": seed,
        "pearson": asdict(corr.pearson),
        "spearman": asdict(corr.spearman),
        "learned_step_reward_mean": mean_step,
        "learned_step_reward_std": std_step,
    }
    for name, reward in (("learned", net), ("true", None)):
        started = time.monotonic()
        policy = train_policy(
            settings.env,
            reward,
            settings.algorithm,
            settings.timesteps,
            seed=seed,
            hyperparams=PPO_CARTPOLE if (settings.env, settings.algorithm) == ("CartPole-v1", "ppo") else None,
            n_envs=settings.n_envs,
            progress=False,
        )
        estimate = evaluate_policy_true_return(policy, episodes=settings.episodes, seed=10_000 + seed * 100)
        row[name] = {
            "mean": estimate.mean,
            "low": estimate.low,
            "high": estimate.high,
            "seconds": time.monotonic() - started,
        }
    random_returns = episode_returns(settings.env, None, settings.episodes, seed=10_000 + seed * 100)
    row["random"] = {"mean": sum(random_returns) / len(random_returns)}
    return row


def summary(rows: list[dict]) -> dict:
    out = {}
    for name in ("learned", "true", "random"):
        out[name] = asdict(t_interval([r[name]["mean"] for r in rows]))
    for name in ("pearson", "spearman"):  # averaged in Fisher's z, so the interval stays inside (−1, 1)
        z = t_interval([math.atanh(min(max(r[name]["value"], -0.999999), 0.999999)) for r in rows])
        out[name] = {"mean": math.tanh(z.mean), "low": math.tanh(z.low), "high": math.tanh(z.high), "k": z.k}
    return out


def markdown(settings: Settings, rows: list[dict], totals: dict, seconds: float, cpu_seconds: float) -> str:
    lines = [
        f"## {settings.algorithm.upper()} on a learned reward vs the true reward ({settings.env}, "
        f"{settings.seeds} seeds, {settings.timesteps} steps each, {settings.pairs} simulated judgements)",
        "",
        "| policy trained on | true return (mean over seeds) | 95 % t-interval |",
        "|---|---|---|",
    ]
    for name, label in (("learned", "learned reward"), ("true", "true reward"), ("random", "none (uniform random)")):
        t = totals[name]
        lines.append(f"| {label} | {t['mean']:.1f} | {t['low']:.1f} – {t['high']:.1f} |")
    lines += ["", "| correlation of learned and true held-out segment returns | mean over seeds | 95 % t-interval |"]
    lines.append("|---|---|---|")
    for name in ("pearson", "spearman"):
        t = totals[name]
        lines.append(f"| {name} | {t['mean']:.3f} | {t['low']:.3f} – {t['high']:.3f} |")
    lines += [
        "",
        "Per seed: "
        + "; ".join(
            f"seed {r['seed']}: learned {r['learned']['mean']:.1f}, true {r['true']['mean']:.1f}, "
            f"random {r['random']['mean']:.1f}, Spearman {r['spearman']['value']:.3f} "
            f"({r['spearman']['low']:.3f}–{r['spearman']['high']:.3f})"
            for r in rows
        ),
        "",
        f"Wall time {seconds / 60:.1f} min, CPU time {cpu_seconds / 60:.1f} min (one thread).",
    ]
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
        settings = Settings(seeds=2, segments=40, pairs=60, reward_epochs=2, timesteps=512, episodes=2)
    torch.set_num_threads(1)
    started, cpu_started = time.monotonic(), time.process_time()
    rows = []
    for seed in range(settings.seeds):
        rows.append(run_seed(settings, seed))
        r = rows[-1]
        print(
            f"seed {seed}: learned {r['learned']['mean']:.1f} true {r['true']['mean']:.1f} "
            f"random {r['random']['mean']:.1f} spearman {r['spearman']['value']:.3f}",
            flush=True,
        )
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    totals = summary(rows)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        output / "results.json",
        json.dumps(
            {
                "settings": asdict(settings),
                "seeds": rows,
                "summary": totals,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
            },
            indent=1,
        )
        + "\n",
    )
    text = markdown(settings, rows, totals, seconds, cpu_seconds)
    write_text_atomic(output / "results.md", text)
    print(text)


if __name__ == "__main__":
    main()
