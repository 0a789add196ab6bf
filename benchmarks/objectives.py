"""Objectives side by side on real preference data: held-out accuracy (95 % CI) and training time.

Each run trains the default MiniLM reward model with one objective on one dataset (`make run`'s
settings but one epoch and max length 256 to fit the 2-core machine: 8 pairs a step, lr 2e-5, best
checkpoint by validation loss) and evaluates pairwise accuracy on the held-out test split of that
dataset (the same split for every objective on it). Results are appended to `benchmarks/results/objectives.jsonl`; the
table `benchmarks/objectives.md` is rewritten from all results recorded so far.

    python benchmarks/objectives.py              # every run
    python benchmarks/objectives.py --only uf    # runs whose name starts with "uf"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import rewardlab

DATA = Path(__file__).resolve().parents[1] / "data"
UF = (
    "ultrafeedback-binarized-1000.jsonl",
    "chosen_rating=metadata.score_chosen,rejected_rating=metadata.score_rejected",
)
TULU = (  # every judgement of one instance (several annotators) shares its id, so they stay in one split
    "tulu1-human-eval.jsonl",
    "response_a=completion_a,response_b=completion_b,annotator=evaluator,id=instance_id",
)
QA = (
    "finegrained-rlhf-qa-feedback-dev.json",
    "prompt=question,responses=prediction 1|prediction 2|prediction 3|prediction 4,judgements=preference",
)
HH = (None, None)
RATINGS = {"shift": 5.0, "scale": 2.0}  # UltraFeedback's GPT-4 ratings (1-10) brought near N(0, 1)

RUNS: dict[str, tuple[tuple[str | None, str | None], str, dict]] = {
    "uf-bradley_terry": (UF, "bradley_terry", {}),
    "uf-regression": (UF, "regression", RATINGS),
    "uf-bt_regression": (UF, "bt_regression", RATINGS),
    "tulu-bradley_terry": (TULU, "bradley_terry", {}),
    "tulu-soft_bradley_terry": (TULU, "soft_bradley_terry", {}),
    "tulu-davidson": (TULU, "davidson", {}),
    "tulu-adaptive_margin": (TULU, "adaptive_margin", {}),
    "qa-bradley_terry": (QA, "bradley_terry", {}),
    "qa-plackett_luce": (QA, "plackett_luce", {}),
    "hh-gpm": (HH, "gpm", {"dim": 4}),
    "hh-ensemble_bradley_terry": (HH, "ensemble_bradley_terry", {"members": 4, "bootstrap": "poisson"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run only names starting with this")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/objectives.jsonl"))
    parser.add_argument("--work", type=Path, default=Path("runs/objectives"))
    args = parser.parse_args()
    for name, ((file, columns), objective, options) in RUNS.items():
        if not name.startswith(args.only):
            continue
        started = time.perf_counter()
        result = rewardlab.train(
            data=str(DATA / file) if file else None,
            objective=objective,
            output_dir=args.work / name,
            overwrite=True,
            progress=False,
            epochs=1,
            **{"model.max_length": 256},
            **({"data.columns": columns, "data.skip_bad_rows": True} if columns else {}),
            **{f"objective.args.{k}": v for k, v in options.items()},
        )
        test = result.test.overall
        row = {
            "run": name,
            "data": file or "hh-rlhf-harmless-1850 (embedded)",
            "objective": objective,
            "options": options,
            "test_pairs": test.n,
            "accuracy": round(test.accuracy, 4),
            "ci": [round(test.ci_low, 4), round(test.ci_high, 4)],
            "train_seconds": round(result.loop_seconds),
            "total_seconds": round(time.perf_counter() - started),
            "steps": result.steps,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        print(json.dumps(row), flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    write_table(args.results, Path("benchmarks/objectives.md"))


def write_table(results: Path, out: Path) -> None:
    rows = {r["run"]: r for r in map(json.loads, results.read_text(encoding="utf-8").splitlines())}  # latest wins
    lines = [
        "# Objectives on real preference data",
        "",
        "Command: `python benchmarks/objectives.py` (raw results: `results/objectives.jsonl`). MiniLM",
        "(all-MiniLM-L6-v2), 1 epoch, 8 pairs a step, lr 2e-5, max length 256, best checkpoint by",
        "validation loss; 2 CPU cores. Accuracy is pairwise on the held-out test split",
        "(tie-labelled pairs left out), with a 95 % bootstrap interval; train time is the training loop",
        "including periodic validation. Rows skipped by `--skip-bad-rows` (chosen identical to",
        "rejected) are counted in each run's log. The runs of 2026-11-30 shared the two cores with other",
        "jobs, so their train times are upper bounds, not speed measurements (speed: `RESULTS.md`).",
        "",
        "| data | objective | options | test pairs | accuracy (95 % CI) | train time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "–"
        accuracy = f"{r['accuracy']:.3f} ({r['ci'][0]:.3f}–{r['ci'][1]:.3f})"
        lines.append(
            f"| {r['data']} | {r['objective']} | {options} | {r['test_pairs']} | {accuracy} | {r['train_seconds']} s |"
        )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
