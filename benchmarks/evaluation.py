"""Reward models and training-free rewards side by side on real preference data, with 95 % CIs.

Scorers: the default reward model (`make run`'s, `runs/default/model`), the SmolLM2-135M-Instruct
judge (pairwise prompt, both orders averaged), its follow-up likelihood (FLR) and its length-
normalised log-likelihood of the reply (a reference-free likelihood reward), and BLEU / ROUGE-L
against reference answers where the data has them (FineGrained-RLHF QA's `gold` answers;
UltraFeedback and HH-RLHF have no reference answers). Datasets: UltraFeedback-200 and the
embedded HH-RLHF test split (370 pairs), plus FineGrained-RLHF QA's test split for the
reference-based rewards. Results: `benchmarks/results/evaluation.jsonl` and `benchmarks/evaluation.md`.

    make run                                  # trains runs/default/model, if not done yet
    rewardlab dpo --output runs/dpo-smollm2   # the DPO-tuned SmolLM2 CDR reads (see RESULTS.md for the run)
    python benchmarks/evaluation.py [--only rm,judge,cdr,flr,loglik,bleu,rouge] [--limit N] [--lm-limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rewardlab.data import ColumnMap, load_preferences, split_pairs
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.reference_scorers import read_references
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them

DATA = Path(__file__).resolve().parents[1] / "data"
QA_COLUMNS = (
    "prompt=question,responses=prediction 1|prediction 2|prediction 3|prediction 4,judgements=preference,reference=gold"
)


def datasets(limit: int | None) -> dict[str, list]:
    uf = load_preferences(DATA / "ultrafeedback-binarized-200.jsonl", skip_bad_rows=True).pairs
    hh = split_pairs(load_preferences().pairs).test
    qa_loaded = load_preferences(
        DATA / "finegrained-rlhf-qa-feedback-dev.json", columns=ColumnMap.parse(QA_COLUMNS), skip_bad_rows=True
    )
    qa = [p for p in split_pairs(qa_loaded.pairs).test if not p.tie]
    return {name: pairs[:limit] for name, pairs in (("ultrafeedback-200", uf), ("hh-rlhf test", hh), ("qa test", qa))}


SCORERS = {
    # key: (label, LM-based?, data sets)
    "rm": ("reward model (MiniLM, make run)", False, ["ultrafeedback-200", "hh-rlhf test", "qa test"]),
    "judge": ("SmolLM2 judge (both orders)", True, ["ultrafeedback-200", "hh-rlhf test"]),
    "cdr": ("CDR: DPO-tuned SmolLM2 over SmolLM2", True, ["ultrafeedback-200", "hh-rlhf test"]),
    "flr": ("SmolLM2 follow-up likelihood (FLR)", True, ["ultrafeedback-200", "hh-rlhf test"]),
    "loglik": ("SmolLM2 mean log-likelihood", True, ["ultrafeedback-200", "hh-rlhf test"]),
    "bleu": ("BLEU vs gold answer", False, ["qa test"]),
    "rouge": ("ROUGE-L vs gold answer", False, ["qa test"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="runs/default/model", help="the default reward model (make run)")
    parser.add_argument("--only", default="rm,judge,bleu,rouge", help=f"scorers to run, of {','.join(SCORERS)}")
    parser.add_argument("--cdr-strong", default="runs/dpo-smollm2/policy", help="CDR's better-aligned LM")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs of each set")
    parser.add_argument("--lm-limit", type=int, default=None, help="the SmolLM2 scorers: only the first N pairs")
    parser.add_argument("--precision", default="auto", help="auto (bf16 where the CPU has it), bf16 or fp32")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/evaluation.jsonl"))
    args = parser.parse_args()
    keys = args.only.split(",")
    unknown = [k for k in keys if k not in SCORERS]
    if unknown:
        raise SystemExit(f"unknown scorers {unknown}; known: {', '.join(SCORERS)}")
    if "rm" in keys and not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"{args.model}: no reward model there; run `make run` first")
    if "cdr" in keys and not (Path(args.cdr_strong) / "config.json").is_file():
        raise SystemExit(f"{args.cdr_strong}: no DPO-tuned policy there; run `rewardlab dpo` first")
    sets = datasets(args.limit)
    references = read_references(DATA / "finegrained-rlhf-qa-feedback-dev.json", ColumnMap.parse(QA_COLUMNS))
    specs = {
        "rm": ScorerSpec("reward-model", model=args.model),
        "judge": ScorerSpec("judge", judge="smollm2"),
        "cdr": ScorerSpec("cdr", strong=args.cdr_strong, weak="smollm2"),
        "flr": ScorerSpec("flr", lm="smollm2"),
        "loglik": ScorerSpec("implicit-mean", policy="smollm2", beta=1.0),
        "bleu": ScorerSpec("bleu", references=references),
        "rouge": ScorerSpec("rouge-l", references=references),
    }
    for key in keys:
        label, uses_lm, names = SCORERS[key]
        spec = specs[key]
        spec.precision = args.precision
        scorer = build_scorer(spec)
        for data_name in names:
            pairs = sets[data_name][: args.lm_limit] if uses_lm else sets[data_name]
            started = time.perf_counter()
            result = evaluate_pairs(scorer, pairs, precision=args.precision)
            row = {
                "scorer": label,
                "data": data_name,
                "pairs": result.overall.n,
                "accuracy": round(result.overall.accuracy, 4),
                "ci": [round(result.overall.ci_low, 4), round(result.overall.ci_high, 4)],
                "precision": result.precision,
                "seconds": round(time.perf_counter() - started),
                "date": time.strftime("%Y-%m-%d %H:%M"),
            }
            print(json.dumps(row), flush=True)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with args.results.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    write_table(args.results, Path("benchmarks/evaluation.md"))


def write_table(results: Path, out: Path) -> None:
    rows = {(r["scorer"], r["data"]): r for r in map(json.loads, results.read_text(encoding="utf-8").splitlines())}
    lines = [
        "# Reward models and training-free rewards side by side",
        "",
        "Command: `python benchmarks/evaluation.py --only KEYS` (raw: `results/evaluation.jsonl`), after",
        "`make run` (the reward model) and, for CDR, the `rewardlab dpo` run of `RESULTS.md` (the strong LM).",
        "Pairwise accuracy with a 95 % bootstrap interval (an exact tie in score counts ½); tie-labelled",
        "pairs are left out. UltraFeedback and HH-RLHF have no reference answers, so BLEU and ROUGE-L are",
        "measured on FineGrained-RLHF QA (gold answers). Only one chat LM ships offline here",
        "(SmolLM2-135M-Instruct), so CDR's strong/weak pair is the DPO-tuned SmolLM2 over SmolLM2 itself;",
        "with that pair CDR equals the DPO implicit reward divided by β. LM-based scorers ran in bf16 with",
        "an fp32 vocabulary layer (`--precision auto`). Times are wall seconds on the 2-core machine, which",
        "other jobs shared on 2026-11-30 (each scorer ran alone among the heavy jobs, under a lock).",
        "",
        "| scorer | data | pairs | accuracy (95 % CI) | precision | seconds | measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        accuracy = f"{r['accuracy']:.3f} ({r['ci'][0]:.3f}–{r['ci'][1]:.3f})"
        precision = r.get("precision", "not recorded")
        cells = [r["scorer"], r["data"], r["pairs"], accuracy, precision, r["seconds"], r["date"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        "Reading (rows of 2026-11-30). On the HH test split only the two models trained on HH's",
        "training split are clearly above chance: the MiniLM reward model and CDR from the DPO-tuned",
        "SmolLM2 (in distribution for both). The 135M judge is at chance on HH and only slightly above it",
        "on UltraFeedback, where none of the scorers is clearly better than chance: HH-harmless training",
        "does not transfer to UltraFeedback's helpfulness judgements.",
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
