"""Where a training step's time goes: PyTorch's profiler over steps of `rewardlab.train` at its defaults.

The embedded HH-RLHF pairs, 8 a step, max length 256, a random head (no probe), no evaluation; the
first two steps warm up and are not profiled. Prints the operators by their own CPU time.

    python benchmarks/profile_step.py [--backbone minilm] [--steps 14] [--rows 25]
"""

from __future__ import annotations

import argparse
import tempfile

from torch.profiler import ProfilerActivity, profile

from rewardlab.training import trainer
from rewardlab.training.config import load_config

WARM_UP = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    profiler = profile(activities=[ProfilerActivity.CPU])
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
        total = sum(e.self_cpu_time_total for e in profiler.key_averages()) / 1e6
        print(f"{profiled} steps profiled, {total:.2f} s of operator time, {total / profiled * 1e3:.0f} ms a step")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
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
