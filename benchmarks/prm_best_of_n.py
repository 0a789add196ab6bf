"""Issue 34's process-reward benchmark: a PRM against an ORM on a small policy's own reasoning chains.

1. **Chains** (``work/chains-train.jsonl``, ``work/chains-test.jsonl``): SmolLM2-135M-Instruct writes
   ``--train-samples`` replies to each of ``--train-problems`` simple arithmetic word problems
   (``data.arithmetic``, level ``simple``: two operations on numbers below 20) and ``--test-samples``
   replies to each of ``--test-problems`` others (problem seeds 1 and 2), sampled at temperature 0.7,
   after a two-shot prompt whose worked examples write one ``what: a op b = c.`` line per operation and
   ``The answer is N.``. Each reply is cut into steps (``reply_steps``: its lines, up to the answer) and
   every step labelled by the exact checker (``check_steps``: true arithmetic on the problem's numbers
   and results; a whole reply ends right only with the right answer). The chains' prompt is the
   question alone. A reply with no text is no candidate.
2. **Models** (``work/prm``, ``work/orm``): ``rewardlab prm train`` from MiniLM on the training chains,
   once with process supervision (every step's label: a PRM) and once with outcome supervision (the
   whole chain's last label only: an ORM, Lightman et al. 2023's comparison), nothing else changed.
   ``--synthetic-chains N`` adds N generated chains of the same level (``data.arithmetic.make_chains``,
   seed 3, about half corrupted at a known step; none on a held-out problem) to both models' training
   data: the policy's own chains are rarely right, and a model that never saw a right ending cannot
   pick one.
3. **Held-out chains**: first-wrong-step localisation of each model (``process.scoring.localisation``),
   and best-of-N: for each test problem, the candidate each rule picks among those that state an
   answer, right when that answer is the problem's, with 95 % Wilson intervals over problems. Rules:
   the PRM's chain score (``min``, ``product``, ``last`` of the step probabilities), the ORM's
   whole-chain probability, majority vote over the stated answers (ties: the earliest sampled), and,
   as bounds, one sample (the mean over candidates) and the oracle (any candidate right).

Each stage is kept in ``--work`` once done, so a rerun continues. ``--tiny`` runs it all on the tiny
test models in seconds (``tests/test_prm_benchmark.py``). The real run:

    nice python benchmarks/prm_best_of_n.py --work /tmp/prm-bon
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.data.arithmetic import (
    Problem,
    check_steps,
    make_chains,
    make_problem,
    parse_number,
    reply_steps,
    stated_answer,
    write_steps,
)
from rewardlab.data.chains import StepChain, read_chains, write_chains
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import step_logits
from rewardlab.process.run import ProcessRunConfig, run_process_training, share
from rewardlab.process.scoring import localisation
from rewardlab.process.trainer import ProcessTrainConfig
from rewardlab.rewards.step_aggregation import chain_score
from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.generation import SampleConfig

INSTRUCTION = (
    "Solve the problem step by step. Write one calculation per line as 'what: a op b = c.' "
    "and end with 'The answer is N.'\n\n"
)
SHOT_SEED, TRAIN_SEED, TEST_SEED, SYNTHETIC_SEED = 0, 1, 2, 3


@dataclass
class Settings:
    policy: str = "smollm2"
    backbone: str = "minilm"
    train_problems: int = 300
    train_samples: int = 8
    test_problems: int = 100
    test_samples: int = 16
    temperature: float = 0.7
    max_new_tokens: int = 64
    epochs: float = 2.0
    lr: float = 3e-5
    max_length: int = 256
    seed: int = 0
    synthetic_chains: int = 0


def problems(count: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    return [make_problem(rng, "simple") for _ in range(count)]


def policy_prompt(problem: Problem) -> str:
    """The two-shot prompt: the instruction, two worked problems (seed 0), then the question."""
    shots = "".join(
        f"Question: {p.question}\nSolution:\n" + "\n".join(write_steps(p)) + "\n\n" for p in problems(2, SHOT_SEED)
    )
    return INSTRUCTION + shots + f"Question: {problem.question}\nSolution:"


def sampled_chains(
    lm: CausalLM, split: str, tasks: list[Problem], samples: int, settings: Settings, path: Path
) -> list[StepChain]:
    """The policy's labelled chains for ``tasks`` (read back from ``path`` once written); ids are
    ``split-problem-sample``."""
    if path.is_file():
        return read_chains(path)
    config = SampleConfig(
        n=samples, max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, seed=settings.seed
    )
    drawn = sample_replies_batched(lm, [policy_prompt(p) for p in tasks], config, progress=True)
    chains = []
    for index, (problem, replies) in enumerate(zip(tasks, drawn, strict=True)):
        for number, sample in enumerate(replies):
            steps = reply_steps(sample.text)
            if steps:
                labels = check_steps(problem, steps)
                chains.append(
                    StepChain(problem.question, steps, labels, str(problem.answer), f"{split}-{index}-{number}")
                )
    write_chains(chains, path)
    return chains


def trained_model(
    work: Path, name: str, supervision: str, settings: Settings, data: str = "chains-train.jsonl"
) -> Path:
    """``work/NAME``: ``rewardlab prm train`` on ``work/DATA`` (kept once its report is written)."""
    folder = work / name
    if not (folder / "report.json").is_file():
        train = ProcessTrainConfig(supervision=supervision, epochs=settings.epochs, lr=settings.lr, seed=settings.seed)
        config = ProcessRunConfig(
            data=str(work / data),
            output_dir=str(folder),
            backbone=settings.backbone,
            max_length=settings.max_length,
            test_fraction=0.1,
            train=train,
        )
        run_process_training(config, resume=True)
    return folder / "model"


def by_problem(chains: list[StepChain]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for position, chain in enumerate(chains):
        groups.setdefault(int(str(chain.id).split("-")[1]), []).append(position)
    return groups


def best_of_n(chains: list[StepChain], scores: dict[str, list[float]], test_problems: int) -> dict[str, dict[str, Any]]:
    """Each rule's accuracy over the test problems (a problem without candidates counts as missed).
    Every rule chooses among the candidates that state an answer, as majority vote does: one that
    states none cannot be right, and a PRM reading a chain cut off after a true step cannot tell."""
    stated = [stated_answer(c.steps) for c in chains]
    right = [s is not None and s == parse_number(c.answer) for s, c in zip(stated, chains, strict=True)]
    groups = by_problem(chains)
    picked: dict[str, list[float]] = {name: [] for name in (*scores, "majority vote", "one sample", "oracle")}
    for problem in range(test_problems):
        members = groups.get(problem, [])
        if not members:
            for values in picked.values():
                values.append(0.0)
            continue
        finished = [i for i in members if stated[i] is not None]
        for name, values in scores.items():
            best = max(finished, key=lambda i: values[i]) if finished else None  # the first of equal scores
            picked[name].append(float(best is not None and right[best]))
        answers = [stated[i] for i in members]
        counts = Counter(a for a in answers if a is not None)
        if counts:
            top = max(counts.values())
            vote = next(a for a in answers if a is not None and counts[a] == top)
            picked["majority vote"].append(float(vote == parse_number(chains[members[0]].answer)))
        else:
            picked["majority vote"].append(0.0)
        picked["one sample"].append(sum(right[i] for i in members) / len(members))
        picked["oracle"].append(float(any(right[i] for i in members)))
    result = {}
    for name, values in picked.items():
        hits = sum(values)
        result[name] = {"accuracy": hits / test_problems, "interval": list(wilson_interval(hits, test_problems))}
    return result


def pin_settings(work: Path, settings: Any) -> None:
    """Record the run's settings in WORK; a rerun with other settings is refused, not mixed in."""
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "settings.json"
    if saved.is_file() and json.loads(saved.read_text()) != asdict(settings):
        raise SystemExit(f"{work} holds a run with other settings ({saved}); choose another --work")
    write_text_atomic(saved, json.dumps(asdict(settings), indent=2) + "\n")


def settings_options(parser: argparse.ArgumentParser, defaults: Any) -> Callable[[argparse.Namespace], Any]:
    """One ``--name`` option per settings field; returns how to read the settings back from the parsed args."""
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return lambda args: type(defaults)(**{k: getattr(args, k) for k in asdict(defaults)})


def run(work: Path, settings: Settings) -> dict[str, Any]:
    pin_settings(work, settings)
    if not (work / "chains-test.jsonl").is_file():
        lm = CausalLM.from_pretrained(settings.policy, precision="auto", max_prompt_tokens=1024)
        train_tasks, test_tasks = (
            problems(settings.train_problems, TRAIN_SEED),
            problems(settings.test_problems, TEST_SEED),
        )
        sampled_chains(lm, "train", train_tasks, settings.train_samples, settings, work / "chains-train.jsonl")
        sampled_chains(lm, "test", test_tasks, settings.test_samples, settings, work / "chains-test.jsonl")
        del lm
    train, test = read_chains(work / "chains-train.jsonl"), read_chains(work / "chains-test.jsonl")
    data, synthetic_used = "chains-train.jsonl", 0
    if settings.synthetic_chains:
        data = "chains-train-and-synthetic.jsonl"
        held_out = {c.prompt for c in test}
        synthetic = make_chains(settings.synthetic_chains, seed=SYNTHETIC_SEED, level="simple")
        synthetic = [c for c in synthetic if c.prompt not in held_out]
        synthetic_used = len(synthetic)
        write_chains(train + synthetic, work / data)
    models = {
        "prm": trained_model(work, "prm", "process", settings, data),
        "orm": trained_model(work, "orm", "outcome", settings, data),
    }
    probabilities = {}
    for name, folder in models.items():
        model = RewardModel.from_pretrained(folder)
        probabilities[name] = [torch.sigmoid(t) for t in step_logits(model, test, progress=True)]
    scores = {f"PRM ({how})": [chain_score(p, how) for p in probabilities["prm"]] for how in ("min", "product", "last")}
    scores["ORM (whole chain)"] = [chain_score(p, "last") for p in probabilities["orm"]]
    results = {
        "settings": asdict(settings),
        "train_chains": len(train),
        "train_chains_right": sum(c.labels[-1] == 1.0 for c in train),
        "synthetic_chains": synthetic_used,
        "test_chains": len(test),
        "test_chains_right": sum(c.labels[-1] == 1.0 for c in test),
        "localisation": {name: localisation(test, p).as_dict() for name, p in probabilities.items()},
        "best_of_n": best_of_n(test, scores, settings.test_problems),
        "train_reports": {name: json.loads((work / name / "report.json").read_text()) for name in models},
    }
    write_text_atomic(work / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(work / "results.md", render(results))
    return results


def localisation_table(located: dict[str, dict[str, Any]]) -> list[str]:
    """Each model's ``Localisation.as_dict()`` as the rows of a markdown table."""
    lines = [
        "| model | first wrong step found | chains with a wrong step | chains without | step accuracy |",
        "|---|---|---|---|---|",
    ]
    for name, found in located.items():
        low, high = found["interval"]
        lines.append(
            f"| {name.upper()} | {found['accuracy']:.3f} ({low:.3f}–{high:.3f}) | {share(found['accuracy_on_wrong'])} "
            f"(n {found['wrong_chains']}) | {share(found['accuracy_on_right'])} (n {found['right_chains']}) | "
            f"{found['step_accuracy']:.3f} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"Training chains: {results['train_chains']} ({results['train_chains_right']} right); held-out chains: "
        f"{results['test_chains']} ({results['test_chains_right']} right); generated chains added to training: "
        f"{results['synthetic_chains']}.",
        "",
        *localisation_table(results["localisation"]),
    ]
    lines += [
        "",
        f"Best-of-{s['test_samples']} on {s['test_problems']} problems:",
        "",
        "| rule | accuracy |",
        "|---|---|",
    ]
    for name, row in results["best_of_n"].items():
        low, high = row["interval"]
        lines.append(f"| {name} | {row['accuracy']:.3f} ({low:.3f}–{high:.3f}) |")
    return "\n".join(lines) + "\n"


def tiny_models(work: Path) -> tuple[Path, Path]:
    """The tiny test decoder and encoder (``tests/tiny_models.py``), built once under ``work/tiny``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import build_tiny_decoder, build_tiny_encoder, built_once

    return built_once(build_tiny_decoder, work / "tiny" / "decoder"), built_once(
        build_tiny_encoder, work / "tiny" / "encoder"
    )


def tiny_settings(work: Path) -> Settings:
    """The tiny test models, a few problems: the numbers mean nothing."""
    decoder, encoder = tiny_models(work)
    return Settings(
        policy=str(decoder),
        backbone=str(encoder),
        train_problems=6,
        train_samples=2,
        test_problems=3,
        test_samples=3,
        max_new_tokens=12,
        epochs=1,
        lr=1e-3,
        max_length=96,
        synthetic_chains=4,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the chains, models and results (resumable)")
    parser.add_argument("--tiny", action="store_true", help="tiny test models and a few problems (smoke run)")
    read_settings = settings_options(parser, Settings())
    args = parser.parse_args(argv)
    settings = tiny_settings(args.work) if args.tiny else read_settings(args)
    results = run(args.work, settings)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
