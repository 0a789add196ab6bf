"""Shortcuts past fp32 scoring's matrix-product bound, and what they cost: int8 and ``torch.compile``.

On a CPU without bf16 units rewardlab scores in fp32, and its scorer already runs near the CPU's
fp32 matrix-product rate (``score_vs_rewardbench.py``). Two ways to go faster without computing
fewer tokens: PyTorch's dynamic int8 quantisation of every linear layer (per-tensor and per-channel
weights, activations quantised on the fly), and ``torch.compile`` (inductor, weights frozen) with
fixed or dynamic shapes. Each scores the same texts through ``RewardModel.score_ids`` in fp32, in
turn with the eager fp32 model, rounds alternating; the report gives texts/s (best round), the first
call apart (compilation), the largest score change against eager fp32, the share of pairwise
decisions that stay the same, and the accuracy of those decisions.

    python benchmarks/scoring_shortcuts.py --model runs/default/model [--pairs 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from rewardlab.data import load_preferences
from rewardlab.models.reward_model import RewardModel
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them


def int8(model: RewardModel, per_channel: bool) -> RewardModel:
    qconfig = (
        torch.ao.quantization.per_channel_dynamic_qconfig
        if per_channel
        else torch.ao.quantization.default_dynamic_qconfig
    )
    with warnings.catch_warnings():  # PyTorch points to torchao for this API; it still runs as documented
        warnings.simplefilter("ignore")
        quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model.model), {torch.nn.Linear: qconfig})
    return RewardModel(quantised, model.tokenizer, model.info)


def compiled(model: RewardModel, dynamic: bool) -> RewardModel:
    torch._dynamo.reset()
    return RewardModel(torch.compile(model.model, dynamic=dynamic), model.tokenizer, model.info)


def timed_scores(model: RewardModel, ids: list[list[int]]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    scores = model.score_ids(ids, precision="fp32")
    return torch.tensor(scores), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained reward model (e.g. make run's runs/default/model)")
    parser.add_argument("--pairs", type=int, default=300, help="the first N embedded pairs, both replies scored")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scoring_shortcuts.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch._inductor.config.freezing = True
    model = RewardModel.from_pretrained(args.model)
    pairs = load_preferences().pairs[: args.pairs]
    ids = model.encode([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]).ids
    n = len(pairs)
    variants = {
        "fp32 (eager, rewardlab's scorer)": lambda: model,
        "int8, per-tensor weights": lambda: int8(model, per_channel=False),
        "int8, per-channel weights": lambda: int8(model, per_channel=True),
        "torch.compile, fixed shapes": lambda: compiled(model, dynamic=False),
        "torch.compile, dynamic shapes": lambda: compiled(model, dynamic=True),
    }
    reference, _ = timed_scores(model, ids)
    rows = []
    for label, build in variants.items():
        variant = build()
        scores, first = timed_scores(variant, ids)
        seconds = []
        for _ in range(args.rounds):  # eager fp32 in between, so that drift in the machine's speed hits both
            seconds.append(timed_scores(variant, ids)[1])
            timed_scores(model, ids)
        decisions = scores[:n] > scores[n:]
        rows.append(
            {
                "variant": label,
                "first_call_s": first,
                "texts_per_s": len(ids) / min(seconds),
                "texts_per_s_rounds": [len(ids) / s for s in seconds],
                "max_score_change": (scores - reference).abs().max().item(),
                "decisions_kept": (decisions == (reference[:n] > reference[n:])).float().mean().item(),
                "accuracy": decisions.float().mean().item(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": "python benchmarks/scoring_shortcuts.py " + " ".join(sys.argv[1:]),
        "texts": len(ids),
        "score_std": reference.std().item(),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    base = rows[0]["texts_per_s"]
    print("| variant | texts/s | vs fp32 | first call | largest score change | decisions kept | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['texts_per_s']:.1f} | {r['texts_per_s'] / base:.2f}x | {r['first_call_s']:.0f} s "
            f"| {r['max_score_change']:.2g} | {r['decisions_kept']:.1%} | {r['accuracy']:.3f} |"
        )


if __name__ == "__main__":
    main()
