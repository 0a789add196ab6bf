"""Tokens per second of on-policy generation: rewardlab's batched path against ``transformers``' ``generate``.

The same held-out HH prompts (the embedded data's test split, distinct prompts) and the same
sampling settings (N replies per prompt, pure sampling at temperature 1, at most
``--max-new-tokens``), four ways, in one process:

- ``generate, one prompt a call``: N rows of one prompt per call (what a naive loop does);
- ``generate, batched``: up to ``--batch-rows`` rows of several prompts per call, left-padded;
- ``sample_replies``: rewardlab's per-prompt path (the prompt read once, its cache repeated);
- ``sample_replies_batched``: several prompts a batch, each read once, finished rows dropped.

Tokens are reply tokens up to the end of turn (padding and the end-of-turn token not counted);
the four paths draw different random streams, so their replies (and token counts) differ, and the
rate is what compares. Also: how many of the first prompts' greedy replies are identical between
``generate`` and the batched path (the same computation up to floating point).

    python benchmarks/generation_speed.py                  # SmolLM2-135M-Instruct
    python benchmarks/generation_speed.py --tiny           # a 2-layer test decoder, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.data import load_preferences, split_pairs
from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.batched import decode_rows, left_padded, sample_replies_batched
from rewardlab.sampling.generation import SampleConfig, prompt_prefix, sample_replies
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them


def held_out_prompts(count: int) -> list[str]:
    seen: list[str] = []
    for pair in split_pairs(load_preferences().pairs).test:
        if isinstance(pair.prompt, str) and pair.prompt not in seen:
            seen.append(pair.prompt)
        if len(seen) == count:
            break
    return seen


def reply_tokens(rows: torch.Tensor, eos: int, pad: int) -> int:
    """Tokens of each generated row before its end of turn (``generate`` pads after it)."""
    total = 0
    for row in rows.tolist():
        reply = row[: row.index(eos)] if eos in row else row
        total += sum(1 for t in reply if t != pad)
    return total


def generate_rows(
    lm: CausalLM, prefixes: list[list[int]], n: int, max_new_tokens: int, *, sample: bool
) -> torch.Tensor:
    """``generate`` on the given prompts, N rows each, left-padded; the generated part of each row."""
    ids, mask = left_padded([prefix for prefix in prefixes for _ in range(n)], lm.pad_id)
    width = ids.shape[1]
    options = {"do_sample": True, "temperature": 1.0} if sample else {"do_sample": False}
    with torch.inference_mode():
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            top_k=None,
            top_p=None,
            pad_token_id=lm.pad_id,
            eos_token_id=lm.tokenizer.eos_token_id,
            **options,
        )
    return out[:, width:]


def timed(run: Callable[[], int]) -> dict[str, float]:
    start = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def measure(lm: CausalLM, prompts: list[str], config: SampleConfig, batch_rows: int) -> dict[str, dict[str, float]]:
    prefixes = [prompt_prefix(lm, p) for p in prompts]
    eos, pad, n, limit = lm.tokenizer.eos_token_id, lm.pad_id, config.n, config.max_new_tokens
    per_call = max(1, batch_rows // n)
    torch.manual_seed(config.seed)
    # warm-up: every path once on one prompt, so the first timed path pays no first-call costs
    generate_rows(lm, prefixes[:1], 2, 4, sample=True)
    short = SampleConfig(n=2, max_new_tokens=4, seed=config.seed)
    sample_replies(lm, prompts[:1], short)
    sample_replies_batched(lm, prompts[:1], short)
    return {
        "generate, one prompt a call": timed(
            lambda: sum(reply_tokens(generate_rows(lm, [p], n, limit, sample=True), eos, pad) for p in prefixes)
        ),
        "generate, batched": timed(
            lambda: sum(
                reply_tokens(generate_rows(lm, prefixes[i : i + per_call], n, limit, sample=True), eos, pad)
                for i in range(0, len(prefixes), per_call)
            )
        ),
        "sample_replies": timed(lambda: sum(s.tokens for row in sample_replies(lm, prompts, config) for s in row)),
        "sample_replies_batched": timed(
            lambda: sum(
                s.tokens for row in sample_replies_batched(lm, prompts, config, batch_rows=batch_rows) for s in row
            )
        ),
    }


def greedy_agreement(lm: CausalLM, prompts: list[str], max_new_tokens: int) -> tuple[int, int]:
    """How many prompts get the same greedy reply from ``generate`` (one prompt, no padding) and from
    the batched path (all prompts in one left-padded batch)."""
    prefixes = [prompt_prefix(lm, p) for p in prompts]
    eos = lm.tokenizer.eos_token_id
    batched = decode_rows(lm, prefixes, list(range(len(prefixes))), max_new_tokens=max_new_tokens)
    same = 0
    for prefix, (reply, ended) in zip(prefixes, batched, strict=True):
        plain = generate_rows(lm, [prefix], 1, max_new_tokens, sample=False)[0].tolist()
        same += plain == reply + ([eos] if ended else [])
    return same, len(prefixes)


def tiny_decoder(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import build_tiny_decoder

    return build_tiny_decoder(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="smollm2", help="a causal LM folder, or smollm2")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer test decoder instead of --policy (smoke run)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8, help="replies per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-rows", type=int, default=64, help="rows per batch for both batched paths")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--max-prompt-tokens", type=int, default=1024, help="prompts cut from the left (--tiny: 400)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="/tmp/generation_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        policy = tiny_decoder(Path(scratch) / "tiny") if args.tiny else args.policy
        limit = min(400, args.max_prompt_tokens) if args.tiny else args.max_prompt_tokens
        lm = CausalLM.from_pretrained(policy, precision=args.precision, max_prompt_tokens=limit)
        prompts = held_out_prompts(args.prompts)
        config = SampleConfig(n=args.n, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=args.seed)
        results = measure(lm, prompts, config, args.batch_rows)
        same, checked = greedy_agreement(lm, prompts[:4], min(32, args.max_new_tokens))
    base = results["generate, one prompt a call"]["tokens_per_s"]
    print(
        f"{'tiny decoder' if args.tiny else args.policy} ({lm.precision}), {len(prompts)} HH prompts x {args.n} "
        f"replies, <= {args.max_new_tokens} new tokens, {args.threads} threads, {platform.processor() or 'cpu'}"
    )
    print("| path | seconds | reply tokens | tokens/s | vs generate, one prompt a call |")
    print("|---|---|---|---|---|")
    for name, row in results.items():
        speed_up = row["tokens_per_s"] / base
        print(f"| {name} | {row['seconds']} | {row['tokens']} | {row['tokens_per_s']} | {speed_up:.2f}x |")
    print(f"greedy replies identical to generate's: {same} of {checked} prompts")
    report = {
        "policy": "tiny" if args.tiny else args.policy,
        "precision": lm.precision,
        "args": vars(args),
        "results": results,
        "greedy_identical": [same, checked],
    }
    write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
