"""Contrast consistency and held-out accuracy of reward models, without and with RewardFusion.

What ``rewardlab eval MODEL default --split test --contrast C [--fusion default --fusion-split
validation --fusion-alpha A --fusion-top-k K]`` reports, for several models, contrast sets and fusion
settings in one process: each (prompt, reply) is scored once per model and embedded once in all,
then fused in numpy for every setting (``FusedScorer`` over a memoising scorer and embedder, so the
numbers are the command's; ``tests/test_fusion_cli.py`` checks that the command fuses this way).

    python benchmarks/convex_da_fusion.py MODEL_DIR [MODEL_DIR ...] --contrast FOLDER

FOLDER holds the ``contrast-*.jsonl`` files of ``benchmarks/contrast_set.py``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewardlab.data.records import Prompt
from rewardlab.evaluate.consistency import evaluate_contrast, read_contrast_pairs
from rewardlab.evaluate.data_split import load_pairs
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.models.embeddings import load_embedder
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.fusion import FusedScorer

SETTINGS = [(0.25, 8), (0.5, 8), (0.5, None)]
"""(α, top-k) of the fused rows; τ = 0.1 (the default) throughout."""


def key(prompt: Prompt, reply: str) -> tuple:
    return (prompt if isinstance(prompt, str) else repr(prompt), reply)


class Memo:
    """A scorer or embedder that computes each (prompt, reply) once."""

    def __init__(self, compute) -> None:
        self.compute, self.seen = compute, {}

    def __call__(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> np.ndarray:
        new = list(
            dict.fromkeys(key(p, r) for p, r in zip(prompts, replies, strict=True) if key(p, r) not in self.seen)
        )
        if new:
            originals = {key(p, r): (p, r) for p, r in zip(prompts, replies, strict=True)}
            values = self.compute([originals[k][0] for k in new], [originals[k][1] for k in new])
            self.seen.update(zip(new, np.asarray(values), strict=True))
        return np.stack([self.seen[key(p, r)] for p, r in zip(prompts, replies, strict=True)])

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [float(x) for x in self(prompts, replies)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--contrast", required=True)
    parser.add_argument("--memory-split", default="validation")
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args()
    test = load_pairs("default", split="test")
    memory = load_pairs("default", split=args.memory_split)
    memory_items = list(dict.fromkeys((p.prompt, r) for p in memory for r in (p.chosen, p.rejected)))
    contrast = {p.stem: read_contrast_pairs(p) for p in sorted(Path(args.contrast).glob("contrast-*.jsonl"))}
    embed = Memo(load_embedder(args.encoder))
    names = list(contrast)
    print(f"| model | fusion | held-out accuracy (n={len(test)}) | ", end="")
    print(" | ".join(f"{n} consistency (n={len(contrast[n])}) | {n} instance acc." for n in names) + " |")
    print("|---" * (3 + 2 * len(names)) + "|")
    for model_dir in args.models:
        start = time.time()
        model = RewardModel.from_pretrained(model_dir)
        scorer = Memo(lambda p, r, m=model: m.score(p, r))
        memory_rewards = scorer.score([m[0] for m in memory_items], [m[1] for m in memory_items])
        memory_embeddings = embed([m[0] for m in memory_items], [m[1] for m in memory_items])
        variants = [("none", scorer)] + [
            (
                f"α={alpha}, top-k {top_k or 'all'}",
                FusedScorer(scorer, embed, memory_embeddings, np.asarray(memory_rewards), alpha, 0.1, top_k),
            )
            for alpha, top_k in SETTINGS
        ]
        for label, scoring in variants:
            accuracy = evaluate_pairs(scoring, test).overall
            cells = [f"{accuracy.accuracy:.4f} ({accuracy.ci_low:.3f}–{accuracy.ci_high:.3f})"]
            for name in names:
                c = evaluate_contrast(scoring, contrast[name])
                cells += [f"{c.consistency:.4f}", f"{c.instance_accuracy:.4f}"]
            print(f"| {Path(model_dir).parent.name} | {label} | " + " | ".join(cells) + " |", flush=True)
        print(f"<!-- {model_dir}: {time.time() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
