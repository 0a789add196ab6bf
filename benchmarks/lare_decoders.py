"""LaRe's decoders compared: the linear g(z) = z·θ (least squares) against the paper's MLP g_θ (Adam on the same
return-decomposition loss Σ_τ (Σ_t g(z_t) − R(τ))²), on the same random-agent episodes of delivery gridworlds
whose true reward is known, for three factor sets:

- ``true``: the true reward's features (``TRUE_FACTORS_CODE``): both decoders can be exact;
- ``nonlinear``: z₁ = goal − hazard, z₂ = coin − mud (``NONLINEAR_FACTORS_CODE``): r = −1 + 50·z₁ + 3·z₂ − 2·z₂²;
- ``raw``: a one-hot of (s, a), the tabular agent's own input (S·A unknowns).

Per (gridworld, episode seed): reward RMSE of r̂(s, a) against r(s, a) over non-terminal (s, a), and the
normalized return of the greedy policy of r̂ (1 optimal, 0 uniform-random). Means with 95 % t-intervals over
the (gridworld, seed) runs, and of the paired difference MLP − linear.

``--smollm2``: LaRe with SmolLM2-135M-Instruct writing the factors and self-verification on, on the first
``--lm-grids`` gridworlds: how many candidates ran as first written and after verification, and the
normalized return of the chosen decomposition.

    OMP_NUM_THREADS=1 python benchmarks/lare_decoders.py --output /tmp/m26/lare-decoders --smollm2
    python benchmarks/lare_decoders.py --output /tmp/x --grids 2 --seeds 1 --mlp-steps 100   # smoke run
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
from rewardlab.control.language import LMGenerate, run_function, transition_descriptions
from rewardlab.control.lare import (
    NONLINEAR_FACTORS_CODE,
    TRUE_FACTORS_CODE,
    LaReConfig,
    MLPDecoder,
    decompose,
    lare,
    sample_episodes,
    state_action_onehot,
)
from rewardlab.control.mdp import DELIVERY_WEIGHTS, TabularMDP, gridworld, random_gridworld
from rewardlab.evaluate.cv_report import t_interval

HAND_GRID = ("S.c.", ".m#.", "..mG", "X...")
FACTOR_SETS = ("true", "nonlinear", "raw")
DECODERS = ("linear", "mlp")


def grids(count: int, size: int, seed: int) -> list[TabularMDP]:
    """The hand-made 4×4 delivery grid, then random ``size``×``size`` ones."""
    rng = np.random.default_rng(seed)
    return [gridworld(HAND_GRID)] + [random_gridworld(rng, size) for _ in range(count - 1)]


def interval(values: list[float]) -> dict[str, float | None]:
    mean = t_interval(values)
    return {k: (None if v != v else v) for k, v in (("mean", mean.mean), ("low", mean.low), ("high", mean.high))}


def factor_values(mdp: TabularMDP, outcomes, name: str) -> np.ndarray:
    if name == "raw":
        return state_action_onehot(mdp, outcomes)
    code = TRUE_FACTORS_CODE if name == "true" else NONLINEAR_FACTORS_CODE
    run = run_function(code, "factors", outcomes.descriptions, vector=True)
    if run.values is None:
        raise RuntimeError(f"the {name} factor code did not run: {run.error}")
    return run.values


def decoder_rows(args: argparse.Namespace, mdps: list[TabularMDP]) -> list[dict[str, Any]]:
    weights = np.array(DELIVERY_WEIGHTS)
    rows = []
    for g, mdp in enumerate(mdps):
        outcomes = transition_descriptions(mdp)
        features = {name: factor_values(mdp, outcomes, name) for name in FACTOR_SETS}
        for seed in range(args.seeds):
            episodes = sample_episodes(
                mdp, outcomes, weights, args.episodes, args.episode_length, np.random.default_rng(1000 * g + seed)
            )
            row: dict[str, Any] = {"grid": g, "layout": list(mdp.layout), "seed": seed}
            for name in FACTOR_SETS:
                for decoder in DECODERS:
                    mlp = (
                        MLPDecoder(args.hidden, args.layers, args.mlp_steps, args.mlp_lr, seed)
                        if decoder == "mlp"
                        else None
                    )
                    t = time.perf_counter()
                    fit = decompose(mdp, outcomes, features[name], episodes, weights, args.ridge, mlp)
                    row[f"{name}/{decoder}"] = {
                        "reward_rmse": fit.reward_rmse,
                        "normalized": fit.normalized,
                        "seconds": time.perf_counter() - t,
                    }
            rows.append(row)
            print(
                f"grid {g} seed {seed}: "
                + ", ".join(
                    f"{k} rmse {v['reward_rmse']:.3f} norm {v['normalized']:.3f}" for k, v in row.items() if "/" in k
                ),
                file=sys.stderr,
            )
    return rows


def decoder_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FACTOR_SETS:
        for measure in ("reward_rmse", "normalized"):
            for decoder in DECODERS:
                out[f"{name}/{decoder}/{measure}"] = interval([r[f"{name}/{decoder}"][measure] for r in rows])
            out[f"{name}/mlp-linear/{measure}"] = interval(
                [r[f"{name}/mlp"][measure] - r[f"{name}/linear"][measure] for r in rows]
            )
    return out


def smollm2_rows(args: argparse.Namespace, mdps: list[TabularMDP]) -> list[dict[str, Any]]:
    weights = np.array(DELIVERY_WEIGHTS)
    started = time.perf_counter()
    lm = LMGenerate.load("smollm2", max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=0)
    print(f"SmolLM2 loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows = []
    for g, mdp in enumerate(mdps[: args.lm_grids]):
        config = LaReConfig(
            candidates=args.lm_candidates,
            verify=True,
            decoder=args.lm_decoder,
            hidden=args.hidden,
            layers=args.layers,
            mlp_steps=args.mlp_steps,
            mlp_lr=args.mlp_lr,
            seed=g,
        )
        t = time.perf_counter()
        out = lare(mdp, lm, weights, config, progress=True)
        rows.append(
            {
                "grid": g,
                "candidates": len(out.candidates),
                "ran_before_verification": out.ran_before_verification,
                "ran_after_verification": sum(c.error is None for c in out.candidates),
                "outcomes": [c.verification.outcome if c.verification else None for c in out.candidates],
                "errors": [c.error for c in out.candidates],
                "codes": [c.code for c in out.candidates],
                "verify_replies": [c.verification.reply if c.verification else None for c in out.candidates],
                "lare_normalized": None if out.lare is None else out.lare.normalized,
                "lare_rmse": None if out.lare is None else out.lare.reward_rmse,
                "raw_normalized": out.raw.normalized if out.raw else None,
                "seconds": time.perf_counter() - t,
            }
        )
        print(
            f"SmolLM2 grid {g}: {rows[-1]['ran_before_verification']} → {rows[-1]['ran_after_verification']} "
            f"of {len(out.candidates)} ran; {rows[-1]['outcomes']}",
            file=sys.stderr,
        )
    return rows


def render(results: dict[str, Any]) -> str:
    lines = [
        "| factors | decoder | reward RMSE | 95 % interval | normalized return | 95 % interval |",
        "|---|---|---|---|---|---|",
    ]

    def cell(value: dict[str, float | None]) -> tuple[str, str]:
        mean = "n/a" if value["mean"] is None else f"{value['mean']:.3f}"
        span = "n/a" if value["low"] is None else f"[{value['low']:.3f}, {value['high']:.3f}]"
        return mean, span

    summary = results["summary"]
    for name in FACTOR_SETS:
        for decoder in (*DECODERS, "mlp-linear"):
            rmse, rmse_span = cell(summary[f"{name}/{decoder}/reward_rmse"])
            norm, norm_span = cell(summary[f"{name}/{decoder}/normalized"])
            label = "MLP − linear (paired)" if decoder == "mlp-linear" else decoder
            lines.append(f"| {name} | {label} | {rmse} | {rmse_span} | {norm} | {norm_span} |")
    settings = results["settings"]
    lines.append(
        f"\n{len(results['rows'])} runs ({settings['grids']} gridworlds × {settings['seeds']} episode seeds), "
        f"{settings['episodes']} episodes of {settings['episode_length']} steps each; MLP {settings['layers']}×"
        f"{settings['hidden']} ReLU, {settings['mlp_steps']} Adam steps, lr {settings['mlp_lr']}."
    )
    if results.get("smollm2"):
        lines += [
            "",
            "| SmolLM2 grid | candidates | ran as written | ran after verification | verification outcomes | "
            "LaRe normalized |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["smollm2"]:
            norm = "none ran" if row["lare_normalized"] is None else f"{row['lare_normalized']:.3f}"
            lines.append(
                f"| {row['grid']} | {row['candidates']} | {row['ran_before_verification']} | "
                f"{row['ran_after_verification']} | {', '.join(map(str, row['outcomes']))} | {norm} |"
            )
    lines.append(f"\n{results['seconds']:.0f} s in all")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for results.json and results.md")
    parser.add_argument("--grids", type=int, default=6)
    parser.add_argument("--size", type=int, default=5, help="side of the random gridworlds after the hand-made one")
    parser.add_argument("--seeds", type=int, default=3, help="episode seeds per gridworld")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--episode-length", type=int, default=20)
    parser.add_argument("--ridge", type=float, default=1e-6)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--mlp-steps", type=int, default=1500)
    parser.add_argument("--mlp-lr", type=float, default=1e-2)
    parser.add_argument("--smollm2", action="store_true", help="also run LaRe with SmolLM2 and self-verification")
    parser.add_argument("--lm-grids", type=int, default=2)
    parser.add_argument("--lm-candidates", type=int, default=3)
    parser.add_argument("--lm-decoder", default="mlp", choices=DECODERS)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random gridworlds")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    started = time.perf_counter()
    mdps = grids(args.grids, args.size, args.seed)
    results: dict[str, Any] = {"settings": vars(args) | {"output": str(args.output)}}
    results["rows"] = decoder_rows(args, mdps)
    results["summary"] = decoder_summary(results["rows"])
    results["seconds"] = time.perf_counter() - started
    write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    if args.smollm2:
        results["smollm2"] = smollm2_rows(args, mdps)
    results["seconds"] = time.perf_counter() - started
    write_text_atomic(args.output / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output / "results.md", render(results))
    print(render(results))
    return results


if __name__ == "__main__":
    main()
