"""Pretraining with human feedback (Korbak et al. 2023): every objective vs MLE at equal steps.

Real mode: a small Llama (``--size``) with SmolLM2's tokenizer trained from scratch on the HH-RLHF
dialogues embedded in rewardlab (chosen and rejected transcripts as a pretraining corpus: no PyPI
package installs an English corpus on Python 3), segments scored by the word-list scorer (a harm
lexicon; ``--scorer reward-model --model FOLDER`` for a learned one). Reported per objective:
held-out clean loss and the share of unprompted samples scoring below the threshold.

``--tiny``: a synthetic corpus whose bad segments hold the marker word "zonk", a tiny tokenizer and
model, few steps: the test suite runs it (it needs ``tests/tiny_models.py``).

    .venv/bin/python benchmarks/pretrain_feedback.py --tiny --output /tmp/pf
    .venv/bin/python benchmarks/pretrain_feedback.py --steps 600 --size small --output runs/pretrain-feedback
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from rewardlab.atomic import write_jsonl
from rewardlab.pretrain.model import add_control_tokens, load_pretrain_tokenizer
from rewardlab.pretrain.run import PretrainRunConfig, render_report, run_pretraining
from rewardlab.pretrain.scoring import segment_scorer
from rewardlab.pretrain.trainer import PretrainConfig

OBJECTIVES = ["mle", "filtering", "conditional", "unlikelihood", "rwr", "awr"]
MARKER = "zonk"


def synthetic_corpus(path: Path, documents: int = 300, bad_share: float = 0.3, seed: int = 0) -> Path:
    """Documents of two short sentences from eight words; a bad sentence holds the marker word."""
    rng = random.Random(seed)
    words = ["the", "fox", "dog", "runs", "sleeps", "quick", "lazy", "brown"]
    rows = []
    for _ in range(documents):
        sentences = []
        for _ in range(2):
            chosen = [rng.choice(words) for _ in range(4)]
            if rng.random() < bad_share:
                chosen.insert(rng.randrange(5), MARKER)
            sentences.append(" ".join(chosen) + ".")
        rows.append({"text": " ".join(sentences)})
    return write_jsonl(path, rows)


def tiny_tokenizer():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import tiny_chatml_tokenizer

    return add_control_tokens(tiny_chatml_tokenizer())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--output", type=Path, default=Path("runs/pretrain-feedback"))
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--size", default="small")
    parser.add_argument("--block-tokens", type=int, default=128)
    parser.add_argument("--batch-blocks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--bad-percentile", type=float, default=10.0)
    parser.add_argument("--scorer", default="words")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    objectives = args.objectives.split(",")
    if args.tiny:
        corpus = str(synthetic_corpus(args.output / "corpus.jsonl"))
        tokenizer, words = tiny_tokenizer(), [MARKER]
        config = PretrainRunConfig(
            corpus=corpus,
            size="tiny",
            block_tokens=64,
            bad_percentile=25.0,
            samples=min(args.samples, 100),
            sample_tokens=24,
            train=PretrainConfig(
                steps=args.steps if args.steps != 600 else 60, batch_blocks=8, lr=3e-3, warmup_steps=10
            ),
        )
    else:
        corpus, tokenizer, words = "hh-harmless", load_pretrain_tokenizer("smollm2"), []
        config = PretrainRunConfig(
            corpus=corpus,
            size=args.size,
            block_tokens=args.block_tokens,
            bad_percentile=args.bad_percentile,
            samples=args.samples,
            train=PretrainConfig(steps=args.steps, batch_blocks=args.batch_blocks),
        )
    scorer, name = segment_scorer(args.scorer, args.model, words)
    start = time.perf_counter()
    report = run_pretraining(config, objectives, tokenizer, scorer, name, args.output, args.resume, progress=True)
    print(render_report(report))
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "threads": args.threads,
        "results": {
            r.objective: {"clean_loss": r.clean_loss, "undesirable_rate": r.undesirable.rate} for r in report.results
        },
    }
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
