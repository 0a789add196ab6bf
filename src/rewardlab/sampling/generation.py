"""N sampled replies per prompt from a causal LM, reproducible per prompt.

Each prompt is rendered as the policy sees it at generation time (its chat template's generation
prompt, ``models/pair_encoding.py``) and its N replies come from ``generate`` calls of at most
``chunk`` sequences of that one prompt (no padding, so no left-padding effects). Every call is
seeded from (seed, prompt tokens, chunk index), as ``CausalLM.generate`` seeds a single reply, so
a prompt's replies do not depend on which other prompts are sampled, or in what order, and the
first k·chunk replies stay the same when N grows. ``batched.py`` samples many prompts in one
decoding loop, faster, under a per-reply seeding contract of its own.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from transformers import DynamicCache

from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.progress import progress_bar
from rewardlab.runs.config import Checked


@dataclass(frozen=True)
class SampleConfig(Checked):
    """How replies are drawn; every field is part of the generation cache key."""

    n: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    seed: int = 0
    chunk: int = 64
    """Replies per ``generate`` call (bounds memory); changing it changes the random streams."""

    def problems(self) -> list[str]:
        problems = self.not_positive_integers("n", "max_new_tokens", "chunk")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            problems.append(
                f"temperature must be positive (got {self.temperature}); best-of-N needs sampled, distinct replies"
            )
        return problems

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Sample:
    """One reply: its text, how many tokens it took, and whether it ended on its own (not cut at the limit)."""

    text: str
    tokens: int
    finished: bool


def prompt_prefix(lm: CausalLM, prompt: Prompt) -> list[int]:
    """The prompt's token ids as generation sees them (cut from the left to ``lm.max_prompt_tokens``)."""
    return lm.encode_reply(prompt, "")[0]


def chunk_seed(seed: int, prefix: Sequence[int], chunk: int) -> int:
    """A 64-bit seed from the run seed, the prompt's tokens and the chunk index."""
    digest = hashlib.sha256(f"{seed}:{list(prefix)}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@torch.inference_mode()
def sample_prompt(lm: CausalLM, prompt: Prompt, config: SampleConfig) -> list[Sample]:
    """``config.n`` sampled replies to one prompt, in ``ceil(n / chunk)`` seeded generate calls.

    The prompt is encoded once (its key/value cache computed for one row, then repeated for each
    reply of a chunk): with N replies of a long HH prompt, encoding it N times would cost more
    than the replies themselves.
    """
    config.check()
    prefix = prompt_prefix(lm, prompt)
    eos = lm.tokenizer.eos_token_id
    shared = None
    if len(prefix) > 1:
        shared = DynamicCache(config=lm.model.config)
        lm.model(input_ids=torch.tensor([prefix[:-1]], device=lm.model.device), cache=shared, use_cache=True)
    samples: list[Sample] = []
    for index in range(math.ceil(config.n / config.chunk)):
        rows = min(config.chunk, config.n - index * config.chunk)
        cache = None
        if shared is not None:
            cache = copy.deepcopy(shared)
            cache.batch_repeat_interleave(rows)
        drawn = draw_tokens(lm, prefix, rows, config.max_new_tokens, config.temperature, config.seed, index, cache)
        for row in drawn:
            end = row.index(eos) if eos in row else None
            reply = row[:end]
            text = lm.tokenizer.decode(reply, skip_special_tokens=True).strip()
            samples.append(Sample(text, len(reply), end is not None))
    return samples


def draw_tokens(
    lm: CausalLM,
    prefix: Sequence[int],
    rows: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    chunk: int = 0,
    cache: DynamicCache | None = None,
) -> list[list[int]]:
    """``rows`` continuations of ``prefix`` as token ids (padding after an end-of-turn included), drawn
    by one ``generate`` call seeded with ``chunk_seed(seed, prefix, chunk)``, pure sampling (no top-k
    or top-p); ``cache`` holds the prefix's keys and values but its last token, repeated for each row."""
    device = lm.model.device
    input_ids = torch.tensor([list(prefix)] * rows, device=device)
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(chunk_seed(seed, prefix, chunk))
        generated = lm.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            cache=cache,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_k=None,
            top_p=None,
            pad_token_id=lm.pad_id,
            eos_token_id=lm.tokenizer.eos_token_id,
        )
    return generated[:, len(prefix) :].tolist()


def sample_replies(
    lm: CausalLM,
    prompts: Sequence[Prompt],
    config: SampleConfig,
    *,
    progress: bool = False,
    on_prompt: Callable[[int, list[Sample]], None] | None = None,
) -> list[list[Sample]]:
    """``config.n`` replies for every prompt; ``on_prompt(i, samples)`` is called as each prompt finishes
    (the study uses it to save its cache as it goes)."""
    config.check()
    out: list[list[Sample]] = []
    start, tokens = time.perf_counter(), 0
    with progress_bar(progress, f"sampling {config.n} replies per prompt", len(prompts)) as advance:
        for i, prompt in enumerate(prompts):
            samples = sample_prompt(lm, prompt, config)
            out.append(samples)
            if on_prompt is not None:
                on_prompt(i, samples)
            tokens += sum(s.tokens for s in samples)
            advance(tokens_per_s=f"{tokens / (time.perf_counter() - start):.0f}")
    return out
