"""Language-model-shaped rewards for tabular control, with SmolLM2-135M-Instruct as the LM: ICPL (reward code
rewritten from simulated preferences), LaRe (LM latent factors + return decomposition) and ONI (LM caption labels
→ intrinsic reward), on delivery gridworlds whose true reward is known.

Measures, per gridworld: ICPL's fraction of candidates whose code ran and the normalized return (1 = optimal
under the true reward, 0 = uniform-random policy) of each iteration's best candidate; LaRe's fraction of factor
candidates that ran and the normalized return and reward RMSE of its decomposition beside the raw one-hot (s, a)
decomposition of the same episodes; ONI's labels and the normalized return of sparse vs sparse + β·intrinsic.
Means over gridworlds with 95 % t-intervals.

    OMP_NUM_THREADS=1 python benchmarks/llm_rewards.py --output /tmp/m26/llm-rewards           # SmolLM2
    python benchmarks/llm_rewards.py --output /tmp/x --model /path/to/tiny --grids 1 --iterations 1   # smoke run
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
from rewardlab.control.icpl import ICPLConfig, icpl
from rewardlab.control.language import LMGenerate
from rewardlab.control.lare import LaReConfig, lare
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld, random_gridworld
from rewardlab.control.oni import ONIConfig, oni
from rewardlab.evaluate.cv_report import t_interval

HAND_GRID = ("S.c.", ".m#.", "..mG", "X...")


def grids(count: int, size: int, seed: int) -> list[tuple[str, ...]]:
    """The hand-made 4×4 delivery grid, then random ``size``×``size`` ones."""
    rng = np.random.default_rng(seed)
    layouts = [HAND_GRID] + [random_gridworld(rng, size).layout for _ in range(count - 1)]
    return layouts[:count]


def interval(values: list[float]) -> dict[str, float | None]:
    mean = t_interval(values)
    clean = {k: (None if v != v else v) for k, v in (("mean", mean.mean), ("low", mean.low), ("high", mean.high))}
    return clean


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    weights = np.array(DELIVERY_WEIGHTS)
    started = time.perf_counter()
    writer = LMGenerate.load(
        args.model, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )
    labeller = LMGenerate(writer.lm, max_new_tokens=4, temperature=0.0)
    print(f"model loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    results: dict[str, Any] = {"settings": vars(args) | {"output": str(args.output)}, "grids": []}
    for k, layout in enumerate(grids(args.grids, args.size, args.seed)):
        mdp = gridworld(list(layout))
        row: dict[str, Any] = {"layout": list(layout)}
        if "icpl" in args.parts:
            t = time.perf_counter()
            config = ICPLConfig(iterations=args.iterations, candidates=args.candidates, seed=args.seed + k)
            out = icpl(mdp, writer, weights, config, progress=True)
            row["icpl"] = {
                "ran_fraction": out.ran_fraction,
                "best_per_iteration": out.best_per_iteration,
                "errors": [c.error for it in out.iterations for c in it.candidates],
                "seconds": time.perf_counter() - t,
                "replies": [c.reply for it in out.iterations for c in it.candidates],
            }
        if "lare" in args.parts:
            t = time.perf_counter()
            out = lare(
                mdp, writer, weights, LaReConfig(candidates=args.lare_candidates, seed=args.seed + k), progress=True
            )
            row["lare"] = {
                "ran_fraction": out.ran_fraction,
                "errors": [c.error for c in out.candidates],
                "dims": [c.dims for c in out.candidates],
                "lare_normalized": None if out.lare is None else out.lare.normalized,
                "lare_rmse": None if out.lare is None else out.lare.reward_rmse,
                "raw_normalized": out.raw.normalized,
                "raw_rmse": out.raw.reward_rmse,
                "seconds": time.perf_counter() - t,
                "replies": [c.reply for c in out.candidates],
            }
        if "oni" in args.parts:
            t = time.perf_counter()
            out = oni(mdp, labeller, weights, ONIConfig(beta=args.beta, seed=args.seed + k), progress=True)
            row["oni"] = {
                "labels": out.labels,
                "replies": out.replies,
                "sparse_normalized": out.sparse_normalized,
                "shaped_normalized": out.shaped_normalized,
                "seconds": time.perf_counter() - t,
            }
        results["grids"].append(row)
        write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    results["summary"] = summary(results["grids"], args.iterations)
    results["seconds"] = time.perf_counter() - started
    write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output / "results.md", render(results))
    return results


def summary(rows: list[dict[str, Any]], iterations: int) -> dict[str, Any]:
    """Means over gridworlds with 95 % t-intervals; an iteration where nothing ran counts as 0 (no behaviour
    better than random was produced), and how often that happened is reported beside it."""
    out: dict[str, Any] = {}
    if rows and "icpl" in rows[0]:
        out["icpl_ran_fraction"] = interval([r["icpl"]["ran_fraction"] for r in rows])
        for i in range(iterations):
            values = [r["icpl"]["best_per_iteration"][i] for r in rows]
            out[f"icpl_best_iter{i + 1}"] = interval([0.0 if v is None else v for v in values]) | {
                "none_ran": sum(v is None for v in values)
            }
    if rows and "lare" in rows[0]:
        out["lare_ran_fraction"] = interval([r["lare"]["ran_fraction"] for r in rows])
        lare_values = [r["lare"]["lare_normalized"] for r in rows]
        out["lare_normalized"] = interval([0.0 if v is None else v for v in lare_values]) | {
            "none_ran": sum(v is None for v in lare_values)
        }
        out["raw_normalized"] = interval([r["lare"]["raw_normalized"] for r in rows])
    if rows and "oni" in rows[0]:
        out["oni_sparse_normalized"] = interval([r["oni"]["sparse_normalized"] for r in rows])
        out["oni_shaped_normalized"] = interval([r["oni"]["shaped_normalized"] for r in rows])
    return out


def render(results: dict[str, Any]) -> str:
    lines = ["| measure | mean | 95 % interval | note |", "|---|---|---|---|"]
    for name, value in results["summary"].items():
        mean = "n/a" if value["mean"] is None else f"{value['mean']:.3f}"
        low, high = value["low"], value["high"]
        span = "n/a" if low is None else f"[{low:.3f}, {high:.3f}]"
        note = f"{value['none_ran']} grid(s) where nothing ran (counted 0)" if value.get("none_ran") else ""
        lines.append(f"| {name} | {mean} | {span} | {note} |")
    lines.append("| true reward (reference) | 1.000 | | |")
    lines.append("| uniform policy (reference) | 0.000 | | |")
    lines.append(
        f"\n{len(results['grids'])} gridworlds, {results['seconds']:.0f} s, model {results['settings']['model']}"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for results.json and results.md")
    parser.add_argument("--model", default="smollm2", help="smollm2 or a local causal LM folder")
    parser.add_argument("--parts", default="icpl,lare,oni", help="comma-separated: icpl, lare, oni")
    parser.add_argument("--grids", type=int, default=2)
    parser.add_argument("--size", type=int, default=5, help="side of the random gridworlds after the hand-made one")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--lare-candidates", type=int, default=4)
    parser.add_argument("--beta", type=float, default=0.3, help="ONI's intrinsic reward weight")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - {"icpl", "lare", "oni"}
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)} (expected icpl, lare, oni)")
    args.output.mkdir(parents=True, exist_ok=True)
    results = run(args)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
