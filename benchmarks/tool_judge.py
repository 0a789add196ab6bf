"""Issue 34's tool item: the same generative judge with and without tools on arithmetic-correctness pairs.

Pairs (``work/pairs.jsonl``): for each of ``--pairs`` multi-step word problems (``data.arithmetic``,
seed ``--seed``), the chosen reply is the correct chain and the rejected one the same chain with one
step corrupted (a third each: ``slip``, a false calculation; ``operation``, the wrong operation done
right; ``operand``, a wrong number used right), steps joined by line breaks; ``subset`` names the kind.
Each pair is judged by ``rewardlab eval --scorer judge`` (SmolLM2-135M-Instruct by default, both
orders averaged) and by ``--scorer tool-judge --tools calculator``: the same judge, shown under each
reply what the calculator found in it. The calculator can only catch a false calculation, so the
kinds are reported apart. Accuracy with 95 % Wilson intervals, and the paired difference (pairs one
judge gets right and the other wrong).

    nice python benchmarks/tool_judge.py --work /tmp/tool-judge
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_jsonl, write_text_atomic
from rewardlab.data.arithmetic import KINDS, corrupt, make_problem, write_steps
from rewardlab.data.loading import load_preferences
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer, pair_scores

JUDGES = {"judge": {}, "tool-judge": {"tools": "calculator"}}


def write_pairs(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        problem, kind = make_problem(rng), KINDS[number % len(KINDS)]
        wrong, _ = corrupt(problem, rng, kind)
        rows.append(
            {
                "id": f"arithmetic-{number}",
                "prompt": problem.question,
                "chosen": "\n".join(write_steps(problem)),
                "rejected": "\n".join(wrong),
                "subset": kind,
            }
        )
    write_jsonl(path, rows)


def judged(work: Path, name: str, judge: str, pairs_path: Path) -> list[bool]:
    """Whether the judge prefers the chosen reply of each pair (kept in ``work/NAME.json``)."""
    saved = work / f"{name}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    pairs = load_preferences(pairs_path).pairs
    scorer = build_scorer(ScorerSpec(kind=name, judge=judge, **JUDGES[name]))
    chosen, rejected = pair_scores(scorer, pairs)
    right = [c > r for c, r in zip(chosen, rejected, strict=True)]
    write_text_atomic(saved, json.dumps(right))
    return right


def run(work: Path, pairs: int, seed: int, judge: str) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    pairs_path = work / "pairs.jsonl"
    if not pairs_path.is_file():
        write_pairs(pairs_path, pairs, seed)
    kinds = [json.loads(line)["subset"] for line in pairs_path.read_text().splitlines()]
    right = {name: judged(work, name, judge, pairs_path) for name in JUDGES}
    rows = []
    for kind in ("all", *KINDS):
        keep = [i for i, k in enumerate(kinds) if kind in ("all", k)]
        row: dict[str, Any] = {"kind": kind, "n": len(keep)}
        for name, hits in right.items():
            k = sum(hits[i] for i in keep)
            row[name] = {"accuracy": k / len(keep), "interval": list(wilson_interval(k, len(keep)))}
        row["only_tool_judge_right"] = sum(right["tool-judge"][i] and not right["judge"][i] for i in keep)
        row["only_judge_right"] = sum(right["judge"][i] and not right["tool-judge"][i] for i in keep)
        rows.append(row)
    results = {"judge": judge, "pairs": len(kinds), "seed": seed, "rows": rows}
    write_text_atomic(work / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        "| corruption | pairs | judge | judge + calculator | only the tool judge right | only the judge right |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        cells = []
        for name in JUDGES:
            low, high = row[name]["interval"]
            cells.append(f"{row[name]['accuracy']:.3f} ({low:.3f}–{high:.3f})")
        lines.append(
            f"| {row['kind']} | {row['n']} | {cells[0]} | {cells[1]} | {row['only_tool_judge_right']} | "
            f"{row['only_judge_right']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the pairs, verdicts and results")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", default="smollm2", help="smollm2 or a local chat LM folder")
    args = parser.parse_args(argv)
    results = run(args.work, args.pairs, args.seed, args.judge)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
