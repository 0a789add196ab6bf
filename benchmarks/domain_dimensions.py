"""Label efficiency of a dimension reward vs a reward learned from features (Nath et al. 2024's claim).

"Leveraging Domain Knowledge for Efficient Reward Modelling" claims a reward built from a few
domain-specific dimensions, weighted by preference labels, needs far fewer labels than one learned
from scratch. Their e-commerce opinion summaries (PromptOpinSumm / OpinPref) are not here; the
closest real data is FineGrained-RLHF's QA feedback (Wu et al. 2023): an answer written from
retrieved passages (the source, as the reviews are for an opinion summary), a gold answer, four
answers per question and six human pairwise judgements (ties dropped). The prompt is the question
followed by its passages.

- ``dimensions``: ``evaluate.dimensions`` (length, repetition, refusal, source support, MiniLM
  relevance, ROUGE-L recall and precision against the gold answer), weights by
  ``training.dimension_fit.fit_dimension_reward``;
- ``probe``: a linear Bradley-Terry head on frozen MiniLM features of (prompt, reply)
  (``collect.features.FeatureCache``, ``training.probe.fit_linear_bt``), the same prior λ·k = 1.

Questions are split 80/20 (seed 0) so no test question is seen in training. For k = 8, 16, ..., 256
and all training pairs, each of ``--seeds`` seeds draws k training pairs and both rewards are fitted
on them; reported: mean held-out accuracy, its spread over seeds, and the Wilson 95 % interval of a
run with that accuracy on the test pairs. The plateau of a reward is the smallest k whose mean is
within one point of its accuracy on all pairs; the claim holds when the dimension reward's plateau
is at most a quarter of the probe's.

    OMP_NUM_THREADS=1 python benchmarks/domain_dimensions.py --output /tmp/m25/domain
    python benchmarks/domain_dimensions.py --tiny --output /tmp/dd-tiny   # tiny encoder, 40 questions
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.dimensions import DIMENSIONS, dimension_values
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.progress import progress_bar
from rewardlab.training.dimension_fit import fit_dimension_reward
from rewardlab.training.probe import fit_linear_bt

DATA = Path(__file__).resolve().parents[1] / "src/rewardlab/data/embedded/finegrained-rlhf-qa-feedback-dev.json.gz"
ORDER = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
"""The six judgements' pairs of answers, in the file's order."""
KS = (8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Pair:
    question: int
    chosen: int
    rejected: int


@dataclass(frozen=True)
class Question:
    prompt: str
    gold: str
    answers: tuple[str, ...]


def read_questions(path: Path, limit: int | None = None) -> tuple[list[Question], list[Pair]]:
    """Questions (prompt = question + passages) and their ordered pairs (1: first wins, 2: second, 0: dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)[:limit]
    questions, pairs = [], []
    for q, row in enumerate(rows):
        passages = "\n".join(f"{p[0]}: {' '.join(p[1:])}" for p in row["passages"])
        answers = tuple(row[f"prediction {i}"] for i in range(1, 5))
        questions.append(Question(f"{row['question']}\n\n{passages}", row["gold"], answers))
        for (a, b), label in zip(ORDER, row["preference"], strict=True):
            if label in (1, 2):
                pairs.append(Pair(q, a if label == 1 else b, b if label == 1 else a))
    return questions, pairs


def dimension_table(questions: Sequence[Question], encoder: str) -> np.ndarray:
    """(questions, 4 answers, dimensions) values."""
    from rewardlab.evaluate.relevance import load_relevance_scorer

    relevance = load_relevance_scorer(encoder).relevance
    prompts = [q.prompt for q in questions for _ in q.answers]
    replies = [a for q in questions for a in q.answers]
    references = {q.prompt: (q.gold,) for q in questions}
    values = dimension_values(list(DIMENSIONS), prompts, replies, references=references, relevance=relevance)
    return np.asarray(values, dtype=np.float64).reshape(len(questions), 4, len(DIMENSIONS))


def feature_table(questions: Sequence[Question], encoder: str, cache: Path) -> np.ndarray:
    """(questions, 4 answers, dims) frozen-encoder features of (prompt, answer)."""
    from rewardlab.collect.features import FeatureCache
    from rewardlab.collect.items import item_key

    items = [_Item(item_key(q.prompt, q.answers), q.prompt, q.answers) for q in questions]
    features = FeatureCache(cache, encoder, progress=True).features(items)
    return np.stack([features[item.key] for item in items]).astype(np.float64)


@dataclass(frozen=True)
class _Item:
    key: str
    prompt: str
    replies: tuple[str, ...]


def accuracy_dimensions(table: np.ndarray, train: Sequence[Pair], test: Sequence[Pair]) -> float:
    chosen = [table[p.question, p.chosen] for p in train]
    rejected = [table[p.question, p.rejected] for p in train]
    reward = fit_dimension_reward(list(DIMENSIONS), chosen, rejected)
    w = np.asarray(reward.weights) / np.asarray(reward.scale)
    return _accuracy(table, w, test)


def accuracy_probe(table: np.ndarray, train: Sequence[Pair], test: Sequence[Pair], l2: float = 1.0) -> float:
    diffs = torch.from_numpy(np.stack([table[p.question, p.chosen] - table[p.question, p.rejected] for p in train]))
    w = fit_linear_bt(diffs, torch.ones(len(diffs)), l2 / len(diffs)).double().numpy()
    return _accuracy(table, w, test)


def _accuracy(table: np.ndarray, w: np.ndarray, test: Sequence[Pair]) -> float:
    margins = np.array([(table[p.question, p.chosen] - table[p.question, p.rejected]) @ w for p in test])
    return float(np.mean((margins > 0) + 0.5 * (margins == 0)))


def plateau(curve: dict[str, float], tolerance: float = 0.01) -> str:
    """The smallest k whose accuracy is within ``tolerance`` of the accuracy on all pairs."""
    top = curve["all"]
    return next(k for k, acc in curve.items() if acc >= top - tolerance)


def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    questions, pairs = read_questions(args.data, args.limit)
    order = list(range(len(questions)))
    random.Random(0).shuffle(order)
    test_questions = set(order[: len(order) // 5])
    train = [p for p in pairs if p.question not in test_questions]
    test = [p for p in pairs if p.question in test_questions]
    args.output.mkdir(parents=True, exist_ok=True)
    tables = {
        "dimensions": dimension_table(questions, args.encoder),
        "probe": feature_table(questions, args.encoder, args.output / "features.safetensors"),
    }
    fit = {"dimensions": accuracy_dimensions, "probe": accuracy_probe}
    sizes = [str(k) for k in KS if k < len(train)] + ["all"]
    runs: dict[str, dict[str, list[float]]] = {m: {k: [] for k in sizes} for m in fit}
    with progress_bar(True, "fits", len(sizes) * args.seeds * len(fit)) as advance:
        for k in sizes:
            for seed in range(args.seeds if k != "all" else 1):
                chosen = train if k == "all" else random.Random(1000 + seed).sample(train, int(k))
                for method, fitter in fit.items():
                    runs[method][k].append(fitter(tables[method], chosen, test))
                    advance()
    summary = {}
    for method, by_k in runs.items():
        means = {k: float(np.mean(v)) for k, v in by_k.items()}
        summary[method] = {
            "accuracy": means,
            "seed_sd": {k: float(np.std(v)) for k, v in by_k.items()},
            "wilson95": {k: list(wilson_interval(means[k] * len(test), len(test))) for k in by_k},
            "plateau_k": plateau(means),
        }
    dims_k, probe_k = (summary[m]["plateau_k"] for m in ("dimensions", "probe"))
    as_number = {k: (len(train) if k == "all" else int(k)) for k in sizes}
    return {
        "data": str(args.data),
        "encoder": args.encoder,
        "questions": len(questions),
        "train_pairs": len(train),
        "test_pairs": len(test),
        "seeds": args.seeds,
        "dimensions": list(DIMENSIONS),
        "results": summary,
        "claim_holds": as_number[dims_k] * 4 <= as_number[probe_k],
        "seconds": round(time.monotonic() - started, 1),
    }


def markdown(result: dict) -> str:
    ks = list(result["results"]["dimensions"]["accuracy"])
    lines = [
        f"FineGrained-RLHF QA feedback: {result['train_pairs']} training pairs, {result['test_pairs']} test pairs "
        f"({result['questions']} questions), {result['seeds']} seeds, encoder {result['encoder']}",
        "",
        "| labels k | " + " | ".join(ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for method, row in result["results"].items():
        cells = []
        for k in ks:
            low, high = row["wilson95"][k]
            cells.append(f"{row['accuracy'][k]:.3f} ±{row['seed_sd'][k]:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean held-out accuracy ± its sd over seeds [Wilson 95 % interval of one run at that accuracy].",
        f"Plateau (within 1 point of all): dimensions k = {result['results']['dimensions']['plateau_k']}, "
        f"probe k = {result['results']['probe']['plateau_k']}; claim holds: {result['claim_holds']}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N questions")
    parser.add_argument("--tiny", action="store_true", help="a tiny random encoder and 40 questions (tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_models import build_tiny_encoder, built_once

        args.encoder = str(built_once(build_tiny_encoder, args.output / "tiny-encoder"))
        args.limit, args.seeds = args.limit or 40, min(args.seeds, 2)
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    result = run(args)
    write_text_atomic(args.output / "domain_dimensions.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.output / "domain_dimensions.md", markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
