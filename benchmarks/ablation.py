"""What each training technique contributes (MiniLM, SmolLM2), and how close a step gets to the matmul peak.

The same 160 training pairs (8 a step, the embedded HH-RLHF data, max length 256) go through a full
training step (forward, backward, clipping, AdamW) under cumulative settings, from what a plain
PyTorch loop does to rewardlab's defaults. Each setting runs the 20 steps twice in a row and keeps
the faster pass (the first warms the allocator). The matmul peak is measured on MiniLM's own feed-forward
shape in fp32 and bf16; a step's useful work is 6 FLOPs per weight per padded token for the
linear layers plus attention's score and value products (forward and backward).

The last two rows were tried on top of the defaults and not kept: eager attention that scales the
query instead of the scores and adds the mask in place (two fewer passes over the batch x heads x
length x length scores), and ``torch.compile`` with dynamic shapes (its first pass, which compiles,
is reported apart).

With ``--backbone smollm2`` the same steps run on SmolLM2-135M-Instruct (96 pairs by default, 12
steps) with the decoder's own settings: every setting keeps fused attention (rewardlab's choice for
decoders), and the last one computes each pair's prompt once (one row a pair) where the others put
each reply in its own row after its prompt. FLOP rates are reported for MiniLM only.

    python benchmarks/ablation.py [--backbone minilm] [--pairs 160] [--threads 2] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

from rewardlab.data import load_preferences
from rewardlab.models.reward_model import RewardModel
from rewardlab.training.batching import encode_pairs
from rewardlab.training.compute import ComputeModel

STEP = 8
PAIRS = {"minilm": 160, "smollm2": 96}

SETTINGS = [
    ("padded batches, fp32, fused attention, AdamW per tensor", {}),
    ("+ batches of similar length", {"bucketing": True}),
    ("+ bf16 autocast (fp32 weights)", {"bucketing": True, "autocast": True}),
    ("+ eager attention", {"bucketing": True, "autocast": True, "eager": True}),
    ("bf16 copy with fp32 master weights instead of autocast", {"bucketing": True, "copy": True, "eager": True}),
    ("+ fused AdamW (rewardlab's defaults)", {"bucketing": True, "copy": True, "eager": True, "fused": True}),
]
DEFAULTS = SETTINGS[-1][1]
NOT_KEPT = [
    ("defaults + query scaled, mask added in place (not kept)", {**DEFAULTS, "attention": "scaled_query"}),
    ("defaults + torch.compile, dynamic shapes (not kept)", {**DEFAULTS, "compile": True}),
]

DECODER_SETTINGS = [
    ("two padded rows a pair, fp32, AdamW per tensor", {"separate": True}),
    ("+ batches of similar length", {"separate": True, "bucketing": True}),
    ("+ bf16 copy with fp32 master weights", {"separate": True, "bucketing": True, "copy": True}),
    ("+ fused AdamW", {"separate": True, "bucketing": True, "copy": True, "fused": True}),
    (
        "+ the prompt computed once, one row a pair (rewardlab's defaults)",
        {"bucketing": True, "copy": True, "fused": True},
    ),
]


def scaled_query_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """softmax((q·s) kᵀ + mask) v: the same as transformers' eager attention up to rounding."""
    scores = torch.matmul(query * (query.size(-1) ** -0.5 if scaling is None else scaling), key.transpose(2, 3))
    if attention_mask is not None:
        scores.add_(attention_mask)
    return torch.matmul(torch.softmax(scores, dim=-1), value).transpose(1, 2), None


AttentionInterface.register("scaled_query", scaled_query_attention)
AttentionMaskInterface.register("scaled_query", eager_mask)


def matmul_rate(dtype: torch.dtype, tokens: int = 4096, d: int = 384, ff: int = 1536) -> float:
    """FLOP/s of MiniLM's feed-forward matmul shape (tokens x d @ d x ff), best of 5."""
    a, b = torch.randn(tokens, d, dtype=dtype), torch.randn(d, ff, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * tokens * d * ff / best


def step_flops(model: RewardModel, batches: list[list[int]], lengths: list[int]) -> float:
    """Useful FLOPs of the training steps: linear layers (6 per weight per token) plus attention."""
    config = model.model.config
    weights = sum(p.numel() for n, p in model.model.named_parameters() if p.dim() == 2 and "embeddings" not in n)
    total = 0.0
    for batch in batches:
        width = max(lengths[i] for i in batch)
        tokens = 2 * len(batch) * width
        attention = 2 * 2 * width * config.hidden_size * config.num_hidden_layers  # QK^T and PV per token
        total += 3 * tokens * (2 * weights + attention)  # backward costs twice the forward
    return total


def run_setting(base: RewardModel, data, order: list[int], options: dict) -> dict:
    torch.manual_seed(0)
    master = RewardModel(type(base.model)(base.model.config), base.tokenizer, base.info)
    master.model.load_state_dict(base.model.state_dict())
    if options.get("copy"):
        compute = ComputeModel(master, "bf16", torch.device("cpu"))
    else:
        compute = ComputeModel(master, "fp32", torch.device("cpu"))
    if not base.shares_prefix:  # an encoder: the setting says which attention (decoders keep fused attention)
        attention = options.get("attention") or ("eager" if options.get("eager") else "sdpa")
        compute.model.model.set_attn_implementation(attention)
    if options.get("compile"):
        compute.model.model.compile(dynamic=True)
    optimizer = torch.optim.AdamW(master.model.parameters(), lr=2e-5, fused=bool(options.get("fused")))
    if options.get("bucketing"):
        order = sorted(order, key=lambda i: data.lengths[i])
    batches = [order[i : i + STEP] for i in range(0, len(order), STEP)]
    random.Random(0).shuffle(batches)
    passes = []
    for _ in range(2):
        start = time.perf_counter()
        for batch in batches:
            pair = [data.chosen[i] for i in batch], [data.rejected[i] for i in batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(options.get("autocast"))):
                rewards = compute.model.separate_pair_rewards if options.get("separate") else compute.model.pair_rewards
                chosen, rejected, _ = rewards(*pair)
            (-torch.nn.functional.logsigmoid(chosen - rejected).mean()).backward()
            compute.accumulate_gradients()
            torch.nn.utils.clip_grad_norm_(master.model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            compute.refresh()
        passes.append(time.perf_counter() - start)
    seconds = min(passes)
    real = sum(len(data.chosen[i]) + len(data.rejected[i]) for i in order)
    padded = sum(2 * len(b) * max(data.lengths[i] for i in b) for b in batches)
    row = {"first_pass_s": passes[0], "pairs_per_s": len(order) / seconds, "real_tokens_per_s": real / seconds}
    if base.shares_prefix:
        return row
    return row | {
        "padding_fraction": 1 - real / padded,
        "flops_per_s": step_flops(base, batches, data.lengths) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", choices=sorted(PAIRS), default="minilm")
    parser.add_argument("--pairs", type=int, help="training pairs (default: 160 for MiniLM, 96 for SmolLM2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/ablation[_smollm2].json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = args.pairs or PAIRS[args.backbone]
    encoder = args.backbone == "minilm"
    output = args.output or Path("benchmarks/results", "ablation.json" if encoder else f"ablation_{args.backbone}.json")
    base = RewardModel.from_backbone(args.backbone, max_length=256)
    data = encode_pairs(base, load_preferences().pairs)
    order = random.Random(0).sample(range(len(data)), pairs)
    settings, defaults = (SETTINGS + NOT_KEPT, len(SETTINGS) - 1) if encoder else (DECODER_SETTINGS, -1)
    peaks = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)} if encoder else {}
    rows = []
    for label, options in settings:
        row = {"setting": label, **run_setting(base, data, order, options)}
        if encoder:
            bf16 = options.get("copy") or options.get("autocast")
            row["fraction_of_peak"] = row["flops_per_s"] / peaks["bf16" if bf16 else "fp32"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    for row in rows:
        row["speedup"] = row["pairs_per_s"] / rows[0]["pairs_per_s"]
        row["of_defaults"] = row["pairs_per_s"] / rows[defaults]["pairs_per_s"]
    result = {
        "backbone": args.backbone,
        "threads": args.threads,
        "pairs": pairs,
        "pairs_per_step": STEP,
        "matmul_peak_flops": peaks,
        "rows": rows,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    if encoder:
        print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    extra = " padding | GFLOP/s | of the matmul peak |" if encoder else ""
    print("| setting | pairs/s | speed-up | of the defaults | first pass |" + extra)
    print("|---" * (5 + 3 * encoder) + "|")
    for r in rows:
        line = (
            f"| {r['setting']} | {r['pairs_per_s']:.2f} | {r['speedup']:.2f}x | {r['of_defaults']:.2f}x "
            f"| {r['first_pass_s']:.1f} s |"
        )
        if encoder:
            line += f" {r['padding_fraction']:.0%} | {r['flops_per_s'] / 1e9:.0f} | {r['fraction_of_peak']:.0%} |"
        print(line)


if __name__ == "__main__":
    main()
