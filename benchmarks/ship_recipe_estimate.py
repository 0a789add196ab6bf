"""Ship a recipe's measured cross-validated accuracy beside it (``runs/recipes/NAME.cv.json``).

    python benchmarks/ship_recipe_estimate.py CV_FOLDER --recipe default --commit REV --command "..."

reads the ``cv.json`` and ``config.yaml`` a finished ``rewardlab cv`` wrote to CV_FOLDER and writes the
estimate, how it was measured (date, CPU, commit, command) and the config it was measured with. A
``rewardlab train`` run with that config's settings shows the estimate in its report
(``runs.recipes.recipe_estimate``); the tests check that each shipped estimate still matches its
recipe, so a recipe changed without being measured again fails them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import yaml

from rewardlab.atomic import write_text_atomic
from rewardlab.runs.recipes import ESTIMATE_SUFFIX, recipe_path


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("cv_folder", type=Path)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--commit", required=True, help="the commit whose code ran the cv")
    parser.add_argument("--command", required=True, help="the command that ran it")
    args = parser.parse_args()
    summary = json.loads((args.cv_folder / "cv.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((args.cv_folder / "config.yaml").read_text(encoding="utf-8"))
    flags = Path("/proc/cpuinfo").read_text()
    units = [u for u in ("amx_tile", "avx512_bf16") if u in flags] or ["no bf16 units"]
    estimate = {
        "mean": summary["mean"],
        "pooled": summary["pooled"],
        "pooled_length": summary["pooled_length"],
        "folds": [f["accuracy"]["accuracy"] for f in summary["folds"]],
        "measured": {
            "date": time.strftime("%Y-%m-%d", time.gmtime((args.cv_folder / "cv.json").stat().st_mtime)),
            "cpu": f"{cpu_name()} ({', '.join(units)})",
            "commit": args.commit,
            "command": args.command,
        },
        "config": config,
    }
    out = recipe_path(args.recipe).with_name(args.recipe + ESTIMATE_SUFFIX)
    write_text_atomic(out, json.dumps(estimate, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
