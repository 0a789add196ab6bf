"""Issue 34's RewardMATH item: how robust each rewardlab scorer is, one correct solution against many.

RewardMATH (Kim et al. 2024) asks whether a scorer puts a problem's correct solution above **every**
incorrect one, as best-of-N needs; the pairwise accuracy over the same (correct, incorrect) pairs is
reported beside it, since the gap is what a pairwise benchmark hides (``evaluate/rewardmath.py``).

1. **Rows** (``work/rewardmath.jsonl``): ``data.arithmetic.one_to_many``, ``--problems`` multi-step
   word problems (seed 5) each with its correct chain and ``--incorrect`` distinct corrupted ones (a
   false calculation, the wrong operation, or a wrong number, at a known step; later steps carry the
   wrong value on). ``work/rewardmath-judges.jsonl`` keeps the first ``--judge-problems`` problems with
   their first ``--judge-incorrect`` incorrect chains: a pairwise judge compares every two replies of a
   problem in both orders, which costs (k+1)k forward passes a problem.
2. **Models**: a PRM and an ORM trained by ``rewardlab prm train`` from MiniLM on ``--train-chains``
   generated chains (seed 4, about half corrupted), with process and with outcome supervision
   (``benchmarks/prm_best_of_n.py``'s ``trained_model``); their first-wrong-step localisation on 500
   held-out chains (seed 6) is reported too.
3. **Scorers**, each on the same rows: the PRM's chain score (min, product, last step: the ``prm``
   scorer kind, each reply's lines its steps), the ORM (the ``prm`` kind's ``last``: the whole reply),
   ``--reward-model`` (``make run``'s HH-RLHF harmless model: a general reward model that never saw
   arithmetic), SmolLM2's reference-free implicit rewards (mean and summed log-probability), R³'s
   prompt-reply relevance (MiniLM), and on the judge rows the SmolLM2 judge, the same judge with the
   calculator, and the reasoning judge (it solves the problem first, RM-R1). Every scalar scorer is
   also read on the judge rows (a subset of its scores), so all stand side by side there. Problems that
   the PRM's and ORM's training chains include are left out of every table (and the held-out chains).

Each scorer's scores are kept in ``work/scores/NAME.json`` once computed, so a rerun continues.
``--tiny`` runs it on the tiny test models in seconds (``tests/test_prm_benchmark.py``). The real run:

    nice python benchmarks/rewardmath_scorers.py --work /tmp/rewardmath --reward-model runs/default/model
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from prm_best_of_n import localisation_table, pin_settings, settings_options, tiny_models, trained_model

from rewardlab.atomic import write_jsonl, write_text_atomic
from rewardlab.data.arithmetic import make_chains, one_to_many
from rewardlab.data.chains import read_chains, write_chains
from rewardlab.evaluate.benchmarks import best_of_n_scores
from rewardlab.evaluate.rewardbench import BestOfNRecord, read_best_of_n
from rewardlab.evaluate.rewardmath import rewardmath_eval
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import step_logits
from rewardlab.process.scoring import localisation

ROWS_SEED, TRAIN_SEED, HELD_OUT_SEED = 5, 4, 6
Scores = list[tuple[list[float], list[float]]]


@dataclass
class Settings:
    problems: int = 100
    incorrect: int = 9
    judge_problems: int = 20
    judge_incorrect: int = 4
    train_chains: int = 2000
    held_out_chains: int = 500
    backbone: str = "minilm"
    policy: str = "smollm2"
    embedder: str = "minilm"
    epochs: float = 2.0
    lr: float = 3e-5
    max_length: int = 256
    seed: int = 0


def kept(path: Path, compute) -> Any:
    """``compute()``, written to ``path`` once and read back on a rerun; the seconds it took beside it."""
    if path.is_file():
        return json.loads(path.read_text())
    start = time.perf_counter()
    value = {"scores": compute()}
    value["seconds"] = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(value))
    return value


def judge_rows(records: list[BestOfNRecord], settings: Settings) -> list[BestOfNRecord]:
    return [
        BestOfNRecord(r.prompt, r.chosen, r.rejected[: settings.judge_incorrect], r.subset, r.id)
        for r in records[: settings.judge_problems]
    ]


def subset_scores(scores: Scores, settings: Settings) -> Scores:
    """A scalar scorer's scores of the judge rows: no need to score them again."""
    return [(c, r[: settings.judge_incorrect]) for c, r in scores[: settings.judge_problems]]


def run(work: Path, settings: Settings, reward_model: str | None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    pin_settings(work, settings)
    rows_path = work / "rewardmath.jsonl"
    if not rows_path.is_file():
        write_jsonl(rows_path, one_to_many(settings.problems, settings.incorrect, seed=ROWS_SEED))
    if not (work / "chains-train.jsonl").is_file():
        write_chains(make_chains(settings.train_chains, seed=TRAIN_SEED), work / "chains-train.jsonl")
    records = read_best_of_n(rows_path)
    judged = judge_rows(records, settings)
    seen = {chain.prompt for chain in read_chains(work / "chains-train.jsonl")}
    write_jsonl(
        work / "rewardmath-judges.jsonl",
        [{"prompt": r.prompt, "chosen": r.chosen[0], "rejected": list(r.rejected), "id": r.id} for r in judged],
    )
    models = {name: trained_model(work, name, how, settings) for name, how in (("prm", "process"), ("orm", "outcome"))}

    held_out = [c for c in make_chains(settings.held_out_chains, seed=HELD_OUT_SEED) if c.prompt not in seen]
    loaded = {name: RewardModel.from_pretrained(folder) for name, folder in models.items()}
    located = {
        name: localisation(held_out, [torch.sigmoid(t) for t in step_logits(model, held_out)]).as_dict()
        for name, model in loaded.items()
    }

    scalar: dict[str, dict[str, Any]] = {}
    step_specs = {  # each reply's lines are its steps; the ORM is read on the whole reply (its last step)
        f"prm-{how}": (f"PRM ({how})", ScorerSpec(kind="prm", model=str(models["prm"]), aggregate=how))
        for how in ("min", "product", "last")
    }
    step_specs["orm"] = ("ORM", ScorerSpec(kind="prm", model=str(models["orm"]), aggregate="last"))
    for file, (name, spec) in step_specs.items():
        scalar[name] = kept(
            work / "scores" / f"{file}.json", lambda spec=spec: best_of_n_scores(build_scorer(spec), records)
        )
    specs = {
        "implicit-mean (SmolLM2)": ScorerSpec(kind="implicit-mean", policy=settings.policy),
        "implicit-sum (SmolLM2)": ScorerSpec(kind="implicit-sum", policy=settings.policy),
        "R³ relevance (MiniLM)": ScorerSpec(kind="r3", model=settings.embedder),
    }
    if reward_model:
        specs["reward model (make run, HH)"] = ScorerSpec(kind="reward-model", model=reward_model)
    for name, spec in specs.items():
        scalar[name] = kept(
            work / "scores" / f"{spec.kind}.json", lambda spec=spec: best_of_n_scores(build_scorer(spec), records)
        )

    judges = {
        "judge (SmolLM2)": ScorerSpec(kind="judge", judge=settings.policy),
        "tool judge (SmolLM2 + calculator)": ScorerSpec(kind="tool-judge", judge=settings.policy, tools="calculator"),
        "reasoning judge (SmolLM2, solve first)": ScorerSpec(
            kind="reasoning-judge", judge=settings.policy, reasoning_style="solve"
        ),
    }
    pairwise: dict[str, dict[str, Any]] = {}
    for name, spec in judges.items():
        if spec.kind in skip:
            continue
        pairwise[name] = kept(
            work / "scores" / f"{spec.kind}.json", lambda spec=spec: best_of_n_scores(build_scorer(spec), judged)
        )

    def unseen(rows: list[BestOfNRecord], scores: Scores) -> dict[str, Any]:
        """The RewardMATH figures on the problems the PRM and the ORM never trained on."""
        pairs = [(r, s) for r, s in zip(rows, scores, strict=True) if r.prompt not in seen]
        return rewardmath_eval([r for r, _ in pairs], [s for _, s in pairs]).to_dict()

    full = {name: unseen(records, v["scores"]) for name, v in scalar.items()}
    on_judge_rows = {name: unseen(judged, subset_scores(v["scores"], settings)) for name, v in scalar.items()}
    on_judge_rows |= {name: unseen(judged, v["scores"]) | {"seconds": v["seconds"]} for name, v in pairwise.items()}
    results = {
        "settings": asdict(settings),
        "reward_model": reward_model,
        "problems_seen_in_training": sum(r.prompt in seen for r in records),
        "held_out_chains": len(held_out),
        "localisation": located,
        "rows": full,
        "judge_rows": on_judge_rows,
        "train_reports": {name: json.loads((work / name / "report.json").read_text()) for name in models},
    }
    write_text_atomic(work / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(work / "results.md", render(results))
    return results


def cells(result: dict[str, Any]) -> str:
    one, pair = result["accuracy"], result["pairwise"]
    return (
        f"{one['accuracy']:.3f} ({one['ci_low']:.3f}–{one['ci_high']:.3f}) | {result['mrr']:.3f} | "
        f"{pair['accuracy']:.3f} ({pair['ci_low']:.3f}–{pair['ci_high']:.3f})"
    )


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"First-wrong-step localisation on {results['held_out_chains']} held-out generated chains (problems "
        f"not trained on):",
        "",
        *localisation_table(results["localisation"]),
    ]
    for key, incorrect in (("rows", s["incorrect"]), ("judge_rows", s["judge_incorrect"])):
        problems = next(iter(results[key].values()))["problems"]
        lines += [
            "",
            f"{'All rows' if key == 'rows' else 'The judge rows'}: {problems} problems, 1 correct against {incorrect} "
            f"incorrect:",
            "",
            "| scorer | one-to-many accuracy | MRR | pairwise accuracy |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {cells(result)} |" for name, result in results[key].items()]
    return "\n".join(lines) + "\n"


def tiny_settings(work: Path) -> Settings:
    """The tiny test models (``prm_best_of_n.tiny_models``) and a few rows: the numbers mean nothing."""
    decoder, encoder = tiny_models(work)
    return Settings(
        problems=4,
        incorrect=3,
        judge_problems=2,
        judge_incorrect=2,
        train_chains=12,
        held_out_chains=6,
        backbone=str(encoder),
        policy=str(decoder),
        embedder=str(encoder),
        epochs=1,
        lr=1e-3,
        max_length=96,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the rows, models, scores and results")
    parser.add_argument(
        "--reward-model", help="a reward model folder to score too (e.g. make run's runs/default/model)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny test models and a few rows (smoke run)")
    parser.add_argument("--skip", nargs="*", default=[], help="judge kinds not to run (e.g. reasoning-judge)")
    read_settings = settings_options(parser, Settings())
    args = parser.parse_args(argv)
    settings = tiny_settings(args.work) if args.tiny else read_settings(args)
    results = run(args.work, settings, args.reward_model, tuple(args.skip))
    print(render(results))
    return results


if __name__ == "__main__":
    main()
