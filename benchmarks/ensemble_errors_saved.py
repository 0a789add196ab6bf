"""Ensemble member errors from training runs' saved test predictions, without scoring again.

Each ``rewardlab train`` run evaluates its model on the test split and saves every pair's scores
in ``report/predictions.jsonl`` (same pairs, same order, for runs with the same data and split
settings) and the reward statistics in ``model/config.json``; this feeds them to
``evaluate.ensemble_errors.ensemble_errors``, as ``rewardlab ensemble-errors default RUN/model ...
--split test`` would after scoring each member again.

    python benchmarks/ensemble_errors_saved.py RUN_DIR RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from rewardlab.evaluate.ensemble_errors import ensemble_errors, render_ensemble_errors_markdown


def main(runs: list[str]) -> None:
    chosen, rejected, means, stds = [], [], [], []
    for run in map(Path, runs):
        rows = [json.loads(line) for line in (run / "report" / "predictions.jsonl").read_text().splitlines()]
        rows.sort(key=lambda r: r["index"])
        chosen.append([r["chosen_score"] for r in rows])
        rejected.append([r["rejected_score"] for r in rows])
        saved = json.loads((run / "model" / "config.json").read_text())["rewardlab"]
        means.append(saved["reward_mean"])
        stds.append(saved["reward_std"])
    result = ensemble_errors(np.array(chosen), np.array(rejected), (means, stds))
    print(render_ensemble_errors_markdown(result, runs, "default, test split (saved predictions)"))


if __name__ == "__main__":
    main(sys.argv[1:])
