"""How much faster the LM scorers read text in bf16 (``evaluate.causal_lm.bf16_body``) than in fp32.

SmolLM2-135M-Instruct, one forward pass over a 400-token prompt of the embedded HH data's text,
median of 5 after 2 warm-up passes, 2 threads; also how far the summed reply log-probabilities of
8 held-out pairs move (bf16 body, fp32 vocabulary layer, against fp32).

    python benchmarks/lm_precision.py
"""

from __future__ import annotations

import statistics
import time

import torch

from rewardlab.data import load_preferences, split_pairs
from rewardlab.models.causal_lm import CausalLM
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them


def median_pass_seconds(lm: CausalLM, ids: torch.Tensor) -> float:
    times = []
    with torch.inference_mode():
        for i in range(7):
            start = time.perf_counter()
            lm.model(input_ids=ids)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(2)
    pairs = split_pairs(load_preferences().pairs).test[:8]
    results = {}
    for precision in ("fp32", "bf16"):
        lm = CausalLM.from_pretrained("smollm2", precision=precision)
        text = " ".join(p.prompt for p in split_pairs(load_preferences().pairs).test[:40])
        ids = torch.tensor([lm.tokens(text)[:400]])
        logps, _ = lm.reply_logps([p.prompt for p in pairs], [p.chosen for p in pairs])
        results[precision] = (median_pass_seconds(lm, ids), logps)
    fp32, bf16 = results["fp32"], results["bf16"]
    gap = max(abs(a - b) for a, b in zip(fp32[1], bf16[1], strict=True))
    print(f"400-token pass: fp32 {fp32[0]:.3f} s, bf16 {bf16[0]:.3f} s, speed-up {fp32[0] / bf16[0]:.2f}x")
    print(f"largest difference of a reply's summed log-probability (8 HH replies): {gap:.3f} nats")


if __name__ == "__main__":
    main()
