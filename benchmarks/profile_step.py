"""Where a training step's time goes: PyTorch's profiler over steps of `rewardlab.train` at its defaults.

The embedded HH-RLHF pairs, 8 a step, max length 256, a random head (no probe), no evaluation; the
first two steps warm up and are not profiled. Prints the operators by their own CPU time, the
share of the matrix products, and (``--shapes``) each matrix-product shape's FLOP rate, to set
against the machine's peak (``benchmarks/ablation.py`` measures it).

    python benchmarks/profile_step.py [--backbone minilm] [--steps 14] [--rows 25] [--shapes]
"""

from __future__ import annotations

import argparse
import collections
import tempfile

from torch.profiler import ProfilerActivity, profile

from rewardlab.training import trainer
from rewardlab.training.config import load_config
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them

WARM_UP = 2
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def matmul_flops(name: str, shapes: list[list[int]]) -> int:
    """FLOPs of one matrix product from its recorded input shapes (addmm's first input is the bias)."""
    a, b = shapes[1:3] if name == "aten::addmm" else shapes[:2]
    return 2 * a[0] * a[1] * b[-1] if name != "aten::bmm" else 2 * a[0] * a[1] * a[2] * b[2]


def shape_rates(events, top: int) -> None:
    """Seconds and GFLOP/s of the matrix products, grouped by operator and input shapes."""
    groups: dict[tuple, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for event in events:
        if event.name in MATMULS:
            group = groups[(event.name, str(event.input_shapes[:3]))]
            group[0] += 1
            group[1] += event.self_cpu_time_total / 1e6
            group[2] += matmul_flops(event.name, event.input_shapes)
    total = sum(seconds for _, seconds, _ in groups.values())
    print(f"matrix products by shape ({total:.2f} s in all):")
    for (name, shapes), (calls, seconds, flops) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {name} {shapes}: {calls} calls, {seconds:.2f} s, {flops / seconds / 1e9:.0f} GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--shapes", action="store_true", help="also each matrix-product shape's FLOP rate")
    args = parser.parse_args()
    profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes)
    step = trainer._train_step
    seen = 0

    def profiled_step(*a, **k):
        nonlocal seen
        seen += 1
        if seen == WARM_UP + 1:
            profiler.start()
        return step(*a, **k)

    def report(*a, **k):
        profiler.stop()
        profiled = args.steps - WARM_UP
        averages = profiler.key_averages()
        total = sum(e.self_cpu_time_total for e in averages) / 1e6
        products = sum(e.self_cpu_time_total for e in averages if e.key in MATMULS) / 1e6
        print(f"{profiled} steps profiled, {total:.2f} s of operator time, {total / profiled * 1e3:.0f} ms a step")
        print(f"matrix products (mm, addmm, bmm): {products / total:.0%} of it")
        print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows))
        if args.shapes:
            shape_rates(profiler.events(), args.rows)
        raise SystemExit(0)

    trainer._train_step, trainer._finish = profiled_step, report
    with tempfile.TemporaryDirectory() as out:
        overrides = {
            "output_dir": out,
            "data.validation_fraction": 0.0,
            "data.test_fraction": 0.0,
            "model.backbone": args.backbone,
            "model.max_length": 256,
            "model.head_init": "random",
            "batch_size": 8,
            "optim.lr": 2e-5,
            "max_steps": args.steps,
            "keep_best": False,
            "eval_every": 10**9,
            "save_every": 10**9,
            "num_threads": 2,
            "progress": False,
        }
        trainer.train(load_config(None, overrides), overwrite=True)


if __name__ == "__main__":
    main()
