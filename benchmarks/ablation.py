"""What each training technique contributes (MiniLM, SmolLM2), and how close a step gets to the matmul peak.

The same 160 training pairs (8 a step, the embedded HH-RLHF data, max length 256) go through a full
training step (forward, backward, clipping, AdamW) under cumulative settings, from what a plain
PyTorch loop does to rewardlab's defaults. Every setting is prepared first, then the settings take
each training step in turn, one after the other (the one that starts a turn rotates), and the 20
steps are run ``--rounds`` times (this shared machine's speed drifts by tens of percent within
minutes; taking turns a step at a time spreads a drift over all settings alike); each setting keeps
its fastest pass. The matmul peak is measured on MiniLM's own feed-forward shape in fp32 and bf16,
before and after the steps (the higher kept);
a step's work is 6 FLOPs per weight per padded token for the linear layers plus attention's score
and value products (forward and backward), counting only what is computed (the last layer at the
first token only).

The last three rows were tried on top of the defaults and not kept: PyTorch's fused attention
instead of eager attention, eager attention that scales the query instead of the scores and adds
the mask in place (two fewer passes over the batch x heads x length x length scores), and
``torch.compile`` with dynamic shapes (its first pass, which compiles, is reported apart).

Where the CPU has no bf16 units (rewardlab's ``auto`` precision is fp32 there; or ``--precision
fp32``), the MiniLM ladder stays in fp32: the bf16 rows are left out (emulated bf16 runs 24x slower,
not a setting anyone would use) and the defaults' forward passes hold 1,024 tokens, as they do in fp32.

With ``--backbone smollm2`` the same steps run on SmolLM2-135M-Instruct (96 pairs by default, 12
steps) with the decoder's own settings: each reply in its own row after its prompt (batches grouped
by the longer reply), then each pair's prompt computed once (one row a pair, batches grouped by that
row's width), then attention as matrix products (``models/attention.py``), then forward passes of at
most 2,048 tokens. FLOP rates are reported for MiniLM only.

    python benchmarks/ablation.py [--backbone minilm] [--precision auto] [--pairs 160] [--rounds 3] [--threads 2]
                                  [--output PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

from rewardlab.data import load_preferences
from rewardlab.models.attention import NAME
from rewardlab.models.first_token import compute_first_token_only
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import resolve_precision
from rewardlab.training.batching import encode_pairs, micro_batches, token_budget
from rewardlab.training.compute import ComputeModel
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them

STEP = 8
PAIRS = {"minilm": 160, "smollm2": 96}
BF16_BUDGET = token_budget("auto", "bf16")  # rewardlab's default forward pass where it computes in bf16

SETTINGS = [
    ("padded batches, fp32, fused attention, AdamW per tensor", {}),
    ("+ batches of similar length", {"bucketing": True}),
    ("+ bf16 autocast (fp32 weights)", {"bucketing": True, "autocast": True}),
    ("+ eager attention", {"bucketing": True, "autocast": True, "eager": True}),
    ("bf16 copy with fp32 master weights instead of autocast", {"bucketing": True, "copy": True, "eager": True}),
    ("+ fused AdamW", {"bucketing": True, "copy": True, "eager": True, "fused": True}),
    (
        "+ last layer at the first token only",
        {"bucketing": True, "copy": True, "eager": True, "fused": True, "first_token": True},
    ),
    (
        "+ forward passes of at most 2,048 tokens (rewardlab's defaults)",
        {"bucketing": True, "copy": True, "eager": True, "fused": True, "first_token": True, "budget": BF16_BUDGET},
    ),
]
DEFAULTS = SETTINGS[-1][1]
NOT_KEPT = [
    ("defaults with fused attention (not kept)", {**DEFAULTS, "eager": False}),
    ("defaults + query scaled, mask added in place (not kept)", {**DEFAULTS, "attention": "scaled_query"}),
    ("defaults + torch.compile, dynamic shapes (not kept)", {**DEFAULTS, "compile": True}),
]

FP32_DEFAULTS = {
    "bucketing": True,
    "eager": True,
    "fused": True,
    "first_token": True,
    "budget": token_budget("auto", "fp32"),
}
FP32_SETTINGS = [
    ("padded batches, fp32, fused attention, AdamW per tensor", {}),
    ("+ batches of similar length", {"bucketing": True}),
    ("+ eager attention", {"bucketing": True, "eager": True}),
    ("+ fused AdamW", {"bucketing": True, "eager": True, "fused": True}),
    ("+ last layer at the first token only", {"bucketing": True, "eager": True, "fused": True, "first_token": True}),
    ("+ forward passes of at most 1,024 tokens (rewardlab's defaults in fp32)", FP32_DEFAULTS),
]
FP32_NOT_KEPT = [("defaults with fused attention (not kept)", {**FP32_DEFAULTS, "eager": False})]

DECODER_SETTINGS = [
    ("two padded rows a pair, fp32, fused attention, AdamW per tensor", {"separate": True}),
    ("+ batches of similar length", {"separate": True, "bucketing": True}),
    ("+ bf16 copy with fp32 master weights", {"separate": True, "bucketing": True, "copy": True}),
    ("+ fused AdamW", {"separate": True, "bucketing": True, "copy": True, "fused": True}),
    ("+ the prompt computed once, one row a pair", {"bucketing": True, "copy": True, "fused": True}),
    (
        "+ attention as matrix products (models/attention.py)",
        {"bucketing": True, "copy": True, "fused": True, "attention": NAME},
    ),
    (
        "+ forward passes of at most 2,048 tokens (rewardlab's defaults)",
        {"bucketing": True, "copy": True, "fused": True, "attention": NAME, "budget": BF16_BUDGET},
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


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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


def step_flops(model: RewardModel, batches: list[list[int]], lengths: list[int], first_token: bool) -> float:
    """FLOPs the training steps compute: the layers' matrices (6 per weight per token, backward costs
    twice the forward) plus attention's products; with ``first_token`` the last layer computes its keys
    and values for every token and the rest for the first token of each row."""
    config = model.model.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    per_layer = sum(p.numel() for n, p in model.model.named_parameters() if p.dim() == 2 and ".layer." in n) / layers
    keys_values = 2 * hidden * hidden
    total = 0.0
    for batch in batches:
        width, rows = max(lengths[i] for i in batch), 2 * len(batch)
        tokens = rows * width
        attention = 2 * 2 * width * hidden  # QK^T and PV, per query token and layer
        if first_token:
            last = keys_values * tokens + (per_layer - keys_values) * rows
            forward = 2 * ((layers - 1) * per_layer * tokens + last) + attention * ((layers - 1) * tokens + rows)
        else:
            forward = 2 * layers * per_layer * tokens + attention * layers * tokens
        total += 3 * forward
    return total


class Setting:
    """One cumulative setting: its own copy of the model, optimiser and batches, timed a step at a time."""

    def __init__(self, base: RewardModel, data, order: list[int], options: dict) -> None:
        torch.manual_seed(0)
        master = RewardModel(type(base.model)(base.model.config), base.tokenizer, base.info)
        if options.get("first_token"):
            compute_first_token_only(master.model)
        master.model.load_state_dict(base.model.state_dict())
        self.compute = ComputeModel(master, "bf16" if options.get("copy") else "fp32", torch.device("cpu"))
        attention = options.get("attention") or ("eager" if options.get("eager") else "sdpa")
        self.compute.model.model.set_attn_implementation(attention)
        if options.get("compile"):
            self.compute.model.model.compile(dynamic=True)
        self.optimizer = torch.optim.AdamW(master.model.parameters(), lr=2e-5, fused=bool(options.get("fused")))
        # a decoder's pair in two padded rows (as wide as the longer reply) or in one packed row
        layout = dataclasses.replace(data, packed=False) if options.get("separate") else data
        self.lengths, self.rows = layout.lengths, layout.reply_counts
        if options.get("bucketing"):
            order = sorted(order, key=lambda i: self.lengths[i])
        self.batches = [order[i : i + STEP] for i in range(0, len(order), STEP)]
        random.Random(0).shuffle(self.batches)
        self.base, self.data, self.order, self.options = base, data, order, options
        self.passes: list[float] = []

    def forward_passes(self, batch: list[int]) -> list[list[int]]:
        """The forward passes a step of ``batch`` takes (one, unless the setting has a token budget)."""
        return micro_batches(batch, self.lengths, self.rows, None, self.options.get("budget"))

    def step(self, index: int) -> float:
        """Train on batch ``index``; return its seconds."""
        compute, options, data, batch = self.compute, self.options, self.data, self.batches[index]
        rewards = compute.model.separate_pair_rewards if options.get("separate") else compute.model.pair_rewards
        start = time.perf_counter()
        for part in self.forward_passes(batch):  # the loss is averaged over the step's pairs, whatever the passes
            pair = [data.chosen[i] for i in part], [data.rejected[i] for i in part]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(options.get("autocast"))):
                chosen, rejected, _ = rewards(*pair)
            (-torch.nn.functional.logsigmoid(chosen - rejected).sum() / len(batch)).backward()
            compute.accumulate_gradients()
        torch.nn.utils.clip_grad_norm_(compute.master.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        compute.refresh()
        return time.perf_counter() - start

    def row(self) -> dict:
        """Throughput of the fastest pass (the first warms the allocator, and compiles under torch.compile)."""
        data, order, seconds = self.data, self.order, min(self.passes)
        real = sum(len(data.chosen[i]) + len(data.rejected[i]) for i in order)
        parts = [part for batch in self.batches for part in self.forward_passes(batch)]
        padded = sum(2 * len(p) * max(data.lengths[i] for i in p) for p in parts)
        row = {"first_pass_s": self.passes[0], "pairs_per_s": len(order) / seconds, "real_tokens_per_s": real / seconds}
        if self.base.shares_prefix:
            return row
        flops = step_flops(self.base, parts, data.lengths, bool(self.options.get("first_token")))
        return row | {"padding_fraction": 1 - real / padded, "flops_per_s": flops / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", choices=sorted(PAIRS), default="minilm")
    parser.add_argument("--pairs", type=int, help="training pairs (default: 160 for MiniLM, 96 for SmolLM2)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="MiniLM's ladder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each setting, taken in turn")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/ablation[_smollm2|_fp32].json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = args.pairs or PAIRS[args.backbone]
    encoder = args.backbone == "minilm"
    in_bf16 = resolve_precision(args.precision) == "bf16"
    stem = "ablation" + ("" if encoder else f"_{args.backbone}") + ("_fp32" if encoder and not in_bf16 else "")
    output = args.output or Path("benchmarks/results", f"{stem}.json")
    base = RewardModel.from_backbone(args.backbone, max_length=256)
    data = encode_pairs(base, load_preferences().pairs)
    order = random.Random(0).sample(range(len(data)), pairs)
    if not encoder:
        settings, defaults = DECODER_SETTINGS, -1
    elif in_bf16:
        settings, defaults = SETTINGS + NOT_KEPT, len(SETTINGS) - 1
    else:
        settings, defaults = FP32_SETTINGS + FP32_NOT_KEPT, len(FP32_SETTINGS) - 1
    measured = ("fp32", "bf16") if in_bf16 else ("fp32",)
    peaks = {name: matmul_rate(DTYPES[name]) for name in measured} if encoder else {}
    prepared = [Setting(base, data, order, options) for _, options in settings]
    for _ in range(args.rounds):  # step by step in turn, so that a drift in the machine's speed hits all alike
        passes = [0.0] * len(prepared)
        for index in range(len(prepared[0].batches)):
            for k in range(len(prepared)):  # who goes first rotates: the first of a turn runs a few % slower
                i = (index + k) % len(prepared)
                passes[i] += prepared[i].step(index)
        for setting, seconds in zip(prepared, passes, strict=True):
            setting.passes.append(seconds)
    # measured again after the steps, the best kept: a first measurement after loading can read low
    peaks = {name: max(rate, matmul_rate(DTYPES[name])) for name, rate in peaks.items()}
    rows = []
    for (label, options), setting in zip(settings, prepared, strict=True):
        row = {"setting": label, **setting.row()}
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
        "rounds": args.rounds,
        "matmul_peak_flops": peaks,
        "rows": rows,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    if encoder:
        print("matmul peak: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
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
