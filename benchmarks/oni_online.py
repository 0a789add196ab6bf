"""ONI online (Zheng et al. 2024) on a sparse-reward gridworld: does an intrinsic reward from LM-labelled captions
help a Q-learning agent that must explore? The same agent, on the same seeds, with β = 0 (the sparse goal/hazard
reward only), with ONI's β·r_int from a scripted labeller (what a capable LM answers: a coin or the goal helps the
delivery task, nothing else does), and with ONI's β·r_int from SmolLM2-135M-Instruct labelling for real
(``LMGenerate``, greedy, 4 new tokens). Labels come from a background worker while the agent acts (the paper's
asynchronous server) unless ``--synchronous``.

Measures per seed: the episode in which the agent first enters the goal (never = episodes + 1), the fraction of
episodes that reach it, and the normalized return (true reward; 1 optimal, 0 uniform-random) of the final greedy
policy; means over seeds and ONI − sparse differences on the same seed, with 95 % t-intervals.

    OMP_NUM_THREADS=1 python benchmarks/oni_online.py --output /tmp/m26/oni-online            # scripted + SmolLM2
    python benchmarks/oni_online.py --output /tmp/x --seeds 2 --episodes 20 --labellers scripted   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.control.environments import LAYOUTS as ENV_LAYOUTS
from rewardlab.control.language import Generate, LMGenerate
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld
from rewardlab.control.oni import CAPTIONS, ONIOnlineConfig, ONIOnlineOutput, oni_online
from rewardlab.evaluate.cv_report import t_interval

LAYOUTS = {
    "pocket": ENV_LAYOUTS["pocket"],
    "pocket-large": (
        "S...........",
        "............",
        "............",
        "............",
        "............",
        "............",
        "............",
        "...........#",
        "..........cG",
    ),
}
"""The goal in the far corner, reached only through the coin cell beside it."""


def scripted(prompt: str) -> str:
    """What a capable LM answers: coins and the goal help the delivery task, nothing else does."""
    caption = prompt.split('"')[1]
    return "Yes." if caption in (CAPTIONS["coin"], CAPTIONS["goal"]) else "No."


def interval(values: list[float]) -> dict[str, float | None]:
    m = t_interval(values)
    return {k: (None if v != v else v) for k, v in (("mean", m.mean), ("low", m.low), ("high", m.high))}


def measures(out: ONIOnlineOutput, episodes: int) -> dict[str, Any]:
    return {
        "first_goal": out.first_goal_episode or episodes + 1,
        "never": out.first_goal_episode is None,
        "goal_fraction": float(np.mean(out.reached_goal)),
        "normalized": out.normalized,
        "labelled_first_episode": out.labelled[0],
        "labelled": out.labelled[-1],
        "labels": out.labels,
        "replies": out.replies,
        "errors": out.errors,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    mdp = gridworld(LAYOUTS[args.layout])
    weights = np.array(DELIVERY_WEIGHTS)
    labellers: dict[str, Generate] = {}
    if "scripted" in args.labellers:
        labellers["scripted"] = scripted
    if "smollm2" in args.labellers:
        labellers["smollm2"] = LMGenerate.load(args.model, max_new_tokens=4, temperature=0.0)
        print(f"model loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    results: dict[str, Any] = {"settings": vars(args) | {"output": str(args.output)}, "seeds": []}
    for seed in range(args.seeds):
        row: dict[str, Any] = {"seed": seed}
        for name, beta, generate in [("sparse", 0.0, scripted), *[(n, args.beta, g) for n, g in labellers.items()]]:
            config = ONIOnlineConfig(
                beta=beta,
                episodes=args.episodes,
                episode_length=args.episode_length,
                epsilon=args.epsilon,
                alpha=args.alpha,
                asynchronous=not args.synchronous,
                seed=seed,
            )
            t = time.perf_counter()
            row[name] = measures(oni_online(mdp, generate, weights, config), args.episodes)
            row[name]["seconds"] = time.perf_counter() - t
        results["seeds"].append(row)
        print(f"seed {seed}: " + ", ".join(f"{n} first goal {row[n]['first_goal']}" for n in row if n != "seed"))
        write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    results["summary"] = summary(results["seeds"], ["sparse", *labellers])
    results["seconds"] = time.perf_counter() - started
    write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output / "results.md", render(results))
    return results


def summary(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {m: interval([r[name][m] for r in rows]) for m in ("first_goal", "goal_fraction", "normalized")}
        out[name]["never"] = sum(r[name]["never"] for r in rows)
        out[name]["labelled_first_episode"] = float(np.mean([r[name]["labelled_first_episode"] for r in rows]))
        if name != "sparse":
            for m in ("first_goal", "goal_fraction", "normalized"):
                out[name][f"{m}_minus_sparse"] = interval([r[name][m] - r["sparse"][m] for r in rows])
            out[name]["first_goal_not_later"] = sum(r[name]["first_goal"] <= r["sparse"]["first_goal"] for r in rows)
    return out


def cell(value: dict[str, float | None]) -> str:
    if value["mean"] is None:
        return "n/a"
    if value["low"] is None:
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    n = len(results["seeds"])
    lines = [
        "| reward | first goal episode | episodes reaching goal | final normalized return | never reached |",
        "|---|---|---|---|---|",
    ]
    for name, v in results["summary"].items():
        lines.append(
            f"| {name} | {cell(v['first_goal'])} | {cell(v['goal_fraction'])} | {cell(v['normalized'])} "
            f"| {v['never']}/{n} |"
        )
    lines += ["", "| ONI − sparse, same seed | first goal episode | episodes reaching goal | normalized | "
              "ONI not later |", "|---|---|---|---|---|"]  # fmt: skip
    for name, v in results["summary"].items():
        if name != "sparse":
            lines.append(
                f"| {name} | {cell(v['first_goal_minus_sparse'])} | {cell(v['goal_fraction_minus_sparse'])} "
                f"| {cell(v['normalized_minus_sparse'])} | {v['first_goal_not_later']}/{n} |"
            )
    labels = {k: v["labels"] for k, v in results["seeds"][0].items() if k != "seed" and k != "sparse"}
    lines.append(f"\nLabels (seed 0): {json.dumps(labels)}")
    lines.append(
        f"\nMeans over {n} seeds, 95 % t-intervals. Layout {s['layout']}, {s['episodes']} episodes of ≤ "
        f"{s['episode_length']} steps, ε = {s['epsilon']}, α = {s['alpha']}, β = {s['beta']}, "
        f"{'synchronous' if s['synchronous'] else 'asynchronous'} labelling; "
        f"never reaching the goal counts as episode {s['episodes'] + 1}. {results['seconds']:.0f} s."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for results.json and results.md")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="pocket")
    parser.add_argument("--labellers", default="scripted,smollm2", help="comma-separated: scripted, smollm2")
    parser.add_argument("--model", default="smollm2", help="smollm2 or a local causal LM folder")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--episode-length", type=int, default=50)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=0.3)
    parser.add_argument("--synchronous", action="store_true", help="label each caption before acting on")
    args = parser.parse_args(argv)
    args.labellers = [p.strip() for p in args.labellers.split(",") if p.strip()]
    unknown = set(args.labellers) - {"scripted", "smollm2"}
    if unknown:
        parser.error(f"unknown --labellers {sorted(unknown)} (expected scripted, smollm2)")
    args.output.mkdir(parents=True, exist_ok=True)
    results = run(args)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
