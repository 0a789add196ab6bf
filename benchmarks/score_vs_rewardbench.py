"""Scoring throughput: rewardlab's scorer against a RewardBench-style loop, on the same model and texts.

RewardBench scores a dataset in fixed batches in file order, each padded to its longest text, in
fp32, with transformers' own model class. rewardlab sorts texts into fixed-shape tiles by length
(little padding, and scores that do not depend on batch composition), uses bf16 where the CPU has
native bf16, and computes an encoder's last layer at the first token only. Both score the same
token ids (the 1,850 embedded HH-RLHF pairs, both replies, left-truncated to 256 tokens) with the
same model, alternating, with torch threads fixed; the report gives texts/s, the ratio, the
largest score difference between the two, and the agreement of the pairwise decisions.
``--tile-tokens 2048,8192`` also times rewardlab's scorer at other pass sizes (the first is reported
against the baseline; other sizes change the matrix shapes, so scores may differ in the last bits).

    python benchmarks/score_vs_rewardbench.py [--model DIR] [--repeats 2] [--tile-tokens N[,N...]]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from rewardlab.data import load_preferences
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import TILE_TOKENS, pad_batch
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them


def plain_transformers(model: RewardModel) -> PreTrainedModel:
    """The same weights in transformers' own sequence classifier, as RewardBench loads them (without
    rewardlab's changes, such as computing an encoder's last layer at the first token only)."""
    plain = AutoModelForSequenceClassification.from_config(model.model.config)
    plain.load_state_dict(model.model.state_dict())
    return plain.eval()


@torch.inference_mode()
def rewardbench_style(model: PreTrainedModel, ids: list[list[int]], batch_size: int, pad_id: int) -> list[float]:
    """Fixed batches in input order, padded to the longest, fp32 (RewardBench's pipeline shape)."""
    scores: list[float] = []
    for start in range(0, len(ids), batch_size):
        input_ids, mask = pad_batch(ids[start : start + batch_size], pad_id)
        scores += model(input_ids=input_ids, attention_mask=mask).logits[:, 0].tolist()
    return scores


def timed(fn, *args, **kwargs) -> tuple[list[float], float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="saved reward model (default: MiniLM with a new head)")
    parser.add_argument("--batch-size", type=int, default=32, help="the RewardBench-style loop's batch size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/score_vs_rewardbench.json"))
    parser.add_argument(
        "--tile-tokens", default=str(TILE_TOKENS), help="comma-separated pass sizes for rewardlab's scorer"
    )
    args = parser.parse_args()
    tiles = [int(t) for t in args.tile_tokens.split(",")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RewardModel.from_pretrained(args.model) if args.model else RewardModel.from_backbone("minilm")
    pairs = load_preferences().pairs
    prompts = [p.prompt for p in pairs] * 2
    replies = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    ids = model.encode(prompts, replies).ids
    plain = plain_transformers(model)
    runs: dict[str, list[float]] = {"rewardbench": []} | {f"rewardlab_tile{t}": [] for t in tiles}
    scores = {}
    for _ in range(args.repeats):  # alternate, so drift in machine load hits every run
        baseline, seconds = timed(rewardbench_style, plain, ids, args.batch_size, model.tokenizer.pad_token_id)
        runs["rewardbench"].append(seconds)
        for t in tiles:
            scores[t], seconds = timed(model.score_ids, ids, tile_tokens=t)
            runs[f"rewardlab_tile{t}"].append(seconds)
    ours = scores[tiles[0]]
    n = len(pairs)
    base_t, ours_t = min(runs["rewardbench"]), min(runs[f"rewardlab_tile{tiles[0]}"])
    agree = sum((baseline[i] > baseline[n + i]) == (ours[i] > ours[n + i]) for i in range(n)) / n
    result = {
        "texts": len(ids),
        "real_tokens": sum(map(len, ids)),
        "rewardbench_style_texts_per_s": len(ids) / base_t,
        "rewardlab_texts_per_s": len(ids) / ours_t,
        "tile_tokens": tiles[0],
        "rewardlab_texts_per_s_by_tile_tokens": {t: len(ids) / min(runs[f"rewardlab_tile{t}"]) for t in tiles},
        "max_abs_score_difference_between_tile_sizes": max(
            abs(a - b) for t in tiles for a, b in zip(scores[t], ours, strict=True)
        ),
        "ratio": base_t / ours_t,
        "max_abs_score_difference": max(abs(a - b) for a, b in zip(baseline, ours, strict=True)),
        "pairwise_decisions_agreeing": agree,
        "seconds": runs,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "model": args.model or "minilm + new head (seed 0)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
