"""Issue 31's table: online methods against offline DPO on the same prompt budget, one resumable command.

Each method is one ``rewardlab online`` run (``rewardlab.online.run_online``) in ``WORK/METHOD``, started or
continued with ``--resume`` semantics: finished rounds are read back, an unfinished one continues (a pairwise
update from its checkpoint; a GRPO update from the round's start), so an interrupted table is continued by
running the same command again. Base settings: ``benchmarks/online_smollm2.yaml`` (HH and UltraFeedback prompts,
``data.sources``, taken in turn from each). Methods (``--methods``, in this order by default):

- ``offline_dpo``: ``pairs.strategy=recorded``, the data's own pairs of the same training prompts, the same update;
- ``iterative_dpo``: the judge reward model (``--judge``) ranks 4 sampled replies, best over worst, DPO;
- ``dno``: the GPM preference model (``--gpm``) as the oracle, ``train.loss=dno``;
- ``selm``: ``train.loss=selm`` with the reference policy's greedy reply among the candidates;
- ``temporal``: Temporal self-rewarding, the policy as its own judge, this round's best over round 1's worst;
- ``grpo``: ``trainer=trl_grpo``, TRL's GRPOTrainer with the judge reward model as reward.

``--set key=value`` goes to every run (before each method's own settings, which win). At the end
``WORK/table.md`` and ``WORK/table.json``: one row per method and round, win rate vs the start (95 % Wilson
interval), length-controlled win rate, held-out reward, KL(π‖π_start), reply tokens, wall seconds of the round;
and for each online method, whether its last round beats offline DPO's last round by the held-out evaluator.
That comparison is paired: both runs answer the same held-out prompts (checked: their round-0 replies, the
same start's, must be identical), the evaluator scores both replies to each prompt, a prompt is a win (1), tie
(½) or loss (0); the method beats offline DPO when the 95 % Wilson interval of that paired win rate lies above
½, and the length-controlled paired win rate (``online/evaluation.py``'s fit on the two runs' length
differences) says whether it would still win at equal length.

The real run (SmolLM2-135M-Instruct with LoRA, MiniLM reward models; three models to train first, each
from the packaged data, none of them the evaluator of its own training):

    rewardlab train --data hh-harmless --data ultrafeedback --output /tmp/b31/rm-judge                 # judge RM
    rewardlab train --recipe general --output /tmp/b31/rm-eval        # held-out evaluator: four sources, balanced
    rewardlab train --data hh-harmless --data ultrafeedback --output /tmp/b31/gpm objective.name=gpm  # DNO oracle
    nice python benchmarks/online_table.py --judge /tmp/b31/rm-judge/model --gpm /tmp/b31/gpm/model \\
        --evaluator /tmp/b31/rm-eval/model --work /tmp/b31/table --prompts 128 --rounds 3

(``--set num_threads=2`` etc. for every run; ``--methods offline_dpo,grpo`` for a subset.) Run time, from
the one measured SmolLM2 round in benchmarks/RESULTS.md ("``rewardlab online`` on SmolLM2-135M: one round":
32 prompts x 4 replies, 8 steps of 4 pairs, 272 s, most of it the then unbatched evaluation): about 10 minutes a
round at 128 prompts and 16 steps of 8 pairs, so 3 rounds x 6 methods is about 3 hours on 2 cores (offline DPO
less: nothing generated; GRPO, SELM and the self-judging temporal method more: not measured yet).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.metrics import pairwise_correct, wilson_interval
from rewardlab.online import load_online_config, run_online
from rewardlab.online.evaluation import length_controlled_win_rate

BASE_CONFIG = Path(__file__).with_name("online_smollm2.yaml")
OFFLINE = "offline_dpo"
METHODS: dict[str, list[str]] = {
    OFFLINE: ["pairs.strategy=recorded"],
    "iterative_dpo": [],
    "dno": ["judge.kind=gpm", "judge.model={gpm}", "train.loss=dno"],
    "selm": ["train.loss=selm", "pairs.reference_reply=true"],
    "temporal": ["judge.kind=judge", "pairs.strategy=temporal"],
    "grpo": ["trainer=trl_grpo"],
}
"""Each method's overrides of the base config ({gpm}: the --gpm folder)."""


def method_overrides(method: str, args: argparse.Namespace) -> list[str]:
    """Everything a method's run sets: the table's options, --set, then the method's own keys."""
    base = [
        f"output_dir={Path(args.work) / method}",
        f"rounds={args.rounds}",
        f"data.train_prompts={args.prompts}",
        f"judge.model={args.judge}",
        f"eval.evaluator={args.evaluator}",
    ]
    return base + list(args.set) + [item.format(gpm=args.gpm) for item in METHODS[method]]


def run_method(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """The method's report, its run started or continued (``resume``); an error is kept, not raised."""
    started = time.perf_counter()
    try:
        config = load_online_config(args.config, method_overrides(method, args))
        report = run_online(config, resume=True).report
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"{method}: {e}", file=sys.stderr)
        return {"method": method, "error": str(e)}
    print(f"{method}: {len(report['rounds']) - 1} rounds ({time.perf_counter() - started:.0f} s this call)")
    return {"method": method, "report": report}


def paired_against(work: Path, method: str, rounds: int) -> dict[str, Any] | None:
    """``method``'s last round against offline DPO's, prompt by prompt (module docstring), or None when the two
    runs did not answer the same held-out prompts."""
    ours, theirs = (_evaluation(work / m, rounds) for m in (method, OFFLINE))
    starts = [_evaluation(work / m, 0) for m in (method, OFFLINE)]
    if ours is None or theirs is None or starts[0]["replies"] != starts[1]["replies"]:
        return None
    wins = pairwise_correct(ours["rewards"], theirs["rewards"])
    low, high = wilson_interval(float(wins.sum()), len(wins))
    difference = np.asarray(ours["reply_tokens"], float) - np.asarray(theirs["reply_tokens"], float)
    scale = float(np.std(np.concatenate([ours["reply_tokens"], theirs["reply_tokens"]])))
    controlled = length_controlled_win_rate(wins, difference, scale)
    return {
        "win_rate": {"rate": float(wins.mean()), "low": low, "high": high, "n": len(wins)},
        "length_controlled_win_rate": controlled,
        "reward_difference": float(np.mean(ours["rewards"]) - np.mean(theirs["rewards"])),
        "beats": low > 0.5,
        "beats_length_controlled": low > 0.5 and controlled > 0.5,
    }


def table(results: list[dict[str, Any]], work: Path, rounds: int) -> dict[str, Any]:
    rows, versus = [], {}
    for result in results:
        for row in (result.get("report") or {}).get("rounds", []):
            seconds = row["seconds"]
            rows.append({"method": result["method"], **row, "wall_seconds": sum(seconds.values()) if seconds else None})
        if result["method"] != OFFLINE and "report" in result:
            versus[result["method"]] = paired_against(work, result["method"], rounds)
    errors = {r["method"]: r["error"] for r in results if "error" in r}
    return {"rounds": rounds, "rows": rows, "versus_offline_dpo": versus, "errors": errors}


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Online methods vs offline DPO (issue 31)",
        "",
        "| method | round | pairs | win rate vs start (95 % CI) | LC win rate | held-out reward | KL(π‖π_start) "
        "| reply tokens | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        win, kl = row["win_rate"], row["kl"]
        cells = [
            row["method"],
            str(row["round"]),
            "—" if row["pairs"] is None else str(int(row["pairs"])),
            "—" if win is None else f"{win['rate']:.3f} ({win['low']:.3f}–{win['high']:.3f}, n={win['n']})",
            _text(row["length_controlled_win_rate"]),
            _text(row["mean_reward"]),
            "—" if kl is None else f"{kl['kl']:.3f} ± {kl['std_error']:.3f}",
            _text(row["mean_reply_tokens"], 1),
            _text(row["wall_seconds"], 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Last round (round {result['rounds']}) against offline DPO's, paired on the same held-out prompts "
        "(wins of the method's reply by the held-out evaluator; beats: the 95 % Wilson interval above ½):",
        "",
        "| method | paired win rate vs offline DPO (95 % CI) | LC paired win rate | reward difference | beats | "
        "beats at equal length |",
        "|---|---|---|---|---|---|",
    ]
    for method, versus in result["versus_offline_dpo"].items():
        if versus is None:
            lines.append(f"| {method} | not paired (offline DPO missing, unfinished, or other held-out prompts) "
                         "| — | — | — | — |")  # fmt: skip
            continue
        win = versus["win_rate"]
        lines.append(
            f"| {method} | {win['rate']:.3f} ({win['low']:.3f}–{win['high']:.3f}, n={win['n']}) | "
            f"{versus['length_controlled_win_rate']:.3f} | {versus['reward_difference']:+.3f} | "
            f"{'yes' if versus['beats'] else 'no'} | {'yes' if versus['beats_length_controlled'] else 'no'} |"
        )
    lines += ["", *(f"- {m} failed: {e}" for m, e in result["errors"].items())]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", required=True, help="reward model folder the loop's judge (and GRPO) uses")
    parser.add_argument("--gpm", help="GPM preference model folder (DNO's oracle; needed by dno)")
    parser.add_argument("--evaluator", required=True, help="held-out reward model folder, never a judge")
    parser.add_argument("--work", required=True, help="folder of the runs (WORK/METHOD) and the table")
    parser.add_argument("--prompts", type=int, default=128, help="training prompts per round (data.train_prompts)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    parser.add_argument("--config", default=str(BASE_CONFIG), help="base config (default online_smollm2.yaml)")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    if "dno" in args.methods and not args.gpm:
        parser.error("--gpm: the dno method needs a GPM preference model folder")
    if args.judge == args.evaluator:
        parser.error("--evaluator must differ from --judge: the evaluator is never a judge")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    work = Path(args.work)
    results = [run_method(method, args) for method in args.methods]
    result = table(results, work, args.rounds)
    write_text_atomic(work / "table.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(work / "table.md", render(result))
    print(f"table: {work / 'table.md'}")
    return result


def _evaluation(folder: Path, n: int) -> dict[str, Any] | None:
    path = folder / f"round-{n}" / "evaluation.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["evaluation"] if n == 0 else data


def _text(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(1 if main()["errors"] else 0)
