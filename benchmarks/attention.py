"""Attention alone, forward and backward: PyTorch's fused CPU attention against eager matrix products.

SmolLM2-135M's shapes (9 query heads sharing 3 key/value heads of 64, bf16), 8 rows a pass, with a
causal boolean mask as the packed pairs carry; eager is transformers' eager attention (each key and
value head repeated for the query heads that share it, fp32 softmax) fed the same mask as additive
logits. The two take turns, best of ``--repeats`` each. Importing rewardlab sets its allocator.

    python benchmarks/attention.py [--widths 256 400 512] [--repeats 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.llama.modeling_llama import eager_attention_forward

import rewardlab

rewardlab.tune_cpu()  # its allocator and MKL settings, as in training

ROWS, HEADS, KV_HEADS, DIM = 8, 9, 3, 64


def timed(attention, query, key, value, mask) -> float:
    """Seconds of one forward and backward pass."""
    start = time.perf_counter()
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = HEADS // KV_HEADS, True
    output, _ = attention(module, query, key, value, mask, scaling=DIM**-0.5)
    output.float().sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 400, 512])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| width | fused (sdpa) | eager | fused / eager |\n|---|---|---|---|")
    for width in args.widths:
        query = torch.randn(ROWS, HEADS, width, DIM, dtype=torch.bfloat16, requires_grad=True)
        key, value = (torch.randn(ROWS, KV_HEADS, width, DIM, dtype=torch.bfloat16, requires_grad=True) for _ in "kv")
        allowed = torch.ones(width, width, dtype=torch.bool).tril().expand(ROWS, 1, width, width)
        lowest = torch.finfo(torch.bfloat16).min
        additive = torch.zeros(allowed.shape, dtype=torch.bfloat16).masked_fill_(~allowed, lowest)
        best = {"sdpa": float("inf"), "eager": float("inf")}
        for _ in range(args.repeats):
            best["sdpa"] = min(best["sdpa"], timed(sdpa_attention_forward, query, key, value, allowed))
            best["eager"] = min(best["eager"], timed(eager_attention_forward, query, key, value, additive))
        fused, eager = best["sdpa"], best["eager"]
        print(f"| {width} | {fused * 1e3:.1f} ms | {eager * 1e3:.1f} ms | {fused / eager:.2f}x |")


if __name__ == "__main__":
    main()
