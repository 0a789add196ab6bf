"""Train the default reward model under several settings and report validation and test results.

Used to choose `make run`'s defaults: a setting is chosen by its best validation loss (185 pairs),
never by test accuracy; the test column is reported so that the choice can be judged.

    python benchmarks/sweep_defaults.py '{"model.max_length": 384}' '{"optim.lr": 2e-5, "batch_size": 8}' ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import rewardlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", help="JSON objects of config overrides, one run each")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/sweep_defaults.jsonl"))
    parser.add_argument("--work", type=Path, default=Path("runs/sweep"))
    args = parser.parse_args()
    for setting in args.settings:
        overrides = json.loads(setting)
        started = time.perf_counter()
        result = rewardlab.train(output_dir=args.work, overwrite=True, progress=False, **overrides)
        lines = (args.work / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        best = min((json.loads(x) for x in lines if '"validation"' in x), key=lambda m: m["loss"])
        test = result.test.overall
        row = {
            "overrides": overrides,
            "best_step": result.best_step,
            "steps": result.steps,
            "validation_loss": round(best["loss"], 4),
            "validation_accuracy": round(best["accuracy"], 3),
            "test_accuracy": round(test.accuracy, 3),
            "test_ci": [round(test.ci_low, 3), round(test.ci_high, 3)],
            "seconds": round(time.perf_counter() - started),
        }
        print(json.dumps(row), flush=True)
        with args.output.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
