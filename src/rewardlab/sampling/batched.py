"""N replies per prompt for many prompts at once: prompts batched, each read once, finished rows dropped.

On a CPU, on-policy generation is the cost of an online round, and ``generate`` wastes much of it:
one prompt per call leaves the matrix products narrow, and a batch keeps computing every row until
the longest one ends. Here the rows (prompt, reply index) of several prompts share one decoding
loop: the distinct prompts of a batch are read once, left-padded (their keys and values cached),
the cache is repeated for each reply, and a row that writes the end-of-turn token leaves the batch
(its cache rows are dropped), so the remaining steps compute only the rows still writing.

Reproducibility contract (different from ``generation.py``'s, which follows ``generate``'s random
stream per chunk): reply ``i`` of a prompt is drawn with its own generator, seeded from (seed,
prompt tokens, i) by :func:`reply_seed`. A prompt's replies therefore do not depend on the other
prompts, their order, ``batch_rows`` or ``config.chunk`` (unused here), and the first k replies stay
the same when N grows: exactly so, up to floating point, since a row's logits come from matrix
products whose shape depends on the batch (a token whose cumulative probability lies within
~1e-6 of the uniform draw may differ between batch shapes). The two paths draw different replies
for the same seed. At temperature 0 (greedy, :func:`decode_rows` only) a row is ``generate``'s
greedy continuation of its prompt (``tests/test_generation_batched.py``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache

from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.progress import progress_bar
from rewardlab.sampling.generation import Sample, SampleConfig, prompt_prefix


def reply_seed(seed: int, prefix: Sequence[int], index: int) -> int:
    """A 64-bit seed from the run seed, the prompt's tokens and the reply's index."""
    digest = hashlib.sha256(f"{seed}:{list(prefix)}:reply {index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def next_tokens(logits: torch.Tensor, temperature: float, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """One token per row of ``logits`` (R, V): the argmax at temperature 0, else a draw from
    softmax(logits / temperature) (pure sampling, as ``generate`` with no top-k or top-p) with the row's generator."""
    if temperature <= 0:
        return logits.argmax(-1)
    if generators is None or len(generators) != logits.shape[0]:
        raise ValueError("sampling needs one generator per row")
    probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()
    drawn = [torch.multinomial(probs[row], 1, generator=g) for row, g in enumerate(generators)]
    return torch.cat(drawn).to(logits.device)


def left_padded(prefixes: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prefixes as one (rows, longest) batch padded on the left, and its attention mask."""
    width = max(len(p) for p in prefixes)
    input_ids = torch.full((len(prefixes), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prefixes), width), dtype=torch.long)
    for i, prefix in enumerate(prefixes):
        input_ids[i, width - len(prefix) :] = torch.tensor(list(prefix))
        mask[i, width - len(prefix) :] = 1
    return input_ids, mask


@torch.inference_mode()
def decode_rows(
    lm: CausalLM,
    prefixes: Sequence[Sequence[int]],
    owners: Sequence[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seeds: Sequence[int] | None = None,
) -> list[tuple[list[int], bool]]:
    """Continue ``prefixes[owners[r]]`` for every row r: (reply token ids without the end of turn, whether
    it ended on its own). Each prefix is read once; ``seeds`` (one a row) seed the rows' generators."""
    if not prefixes or any(len(p) == 0 for p in prefixes):
        raise ValueError("every prefix needs at least one token")
    if temperature > 0 and (seeds is None or len(seeds) != len(owners)):
        raise ValueError(f"sampling needs one seed per row ({len(owners)} rows)")
    device, eos = lm.model.device, lm.tokenizer.eos_token_id
    input_ids, mask = left_padded(prefixes, lm.pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=lm.model.config)
    head = lm.model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    rows = torch.tensor(list(owners), dtype=torch.long)
    cache.batch_select_indices(rows.to(device))
    logits, mask, position = head.logits[rows.to(device), -1], mask[rows].to(device), mask[rows].sum(-1).to(device)
    generators = None
    if temperature > 0:
        generators = [torch.Generator().manual_seed(s) for s in seeds]  # type: ignore[union-attr]
    alive = list(range(len(owners)))
    replies: list[list[int]] = [[] for _ in owners]
    finished = [False] * len(owners)
    for step in range(max_new_tokens):
        chosen = next_tokens(logits, temperature, [generators[r] for r in alive] if generators else None)
        keep = []
        for j, (row, token) in enumerate(zip(alive, chosen.tolist(), strict=True)):
            if token == eos:
                finished[row] = True
            else:
                replies[row].append(token)
                keep.append(j)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):
            # a finished row leaves the batch: later steps compute only the rows still writing
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            alive, chosen, mask, position = [alive[j] for j in keep], chosen[index], mask[index], position[index]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
        logits = lm.model(
            input_ids=chosen[:, None], attention_mask=mask, position_ids=position[:, None], cache=cache, use_cache=True
        ).logits[:, -1]
        position = position + 1
    return list(zip(replies, finished, strict=True))


def row_batches(lengths: Sequence[int], n: int, batch_rows: int) -> list[list[tuple[int, int]]]:
    """(prompt, reply index) rows in batches of at most ``batch_rows``, prompts longest first (so a
    batch's prompts have similar lengths and left padding stays small)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows = [(p, i) for p in order for i in range(n)]
    return [rows[start : start + batch_rows] for start in range(0, len(rows), batch_rows)]


def sample_replies_batched(
    lm: CausalLM,
    prompts: Sequence[Prompt],
    config: SampleConfig,
    *,
    batch_rows: int = 64,
    progress: bool = False,
    on_prompt: Callable[[int, list[Sample]], None] | None = None,
) -> list[list[Sample]]:
    """``config.n`` sampled replies for every prompt, as :func:`generation.sample_replies` returns them
    (``config.chunk`` unused); at most ``batch_rows`` replies are written at once. ``on_prompt(i,
    samples)`` is called as each prompt's replies are all written, longest prompts first."""
    config.check()
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive integer (got {batch_rows!r})")
    prefixes = [prompt_prefix(lm, p) for p in prompts]
    drawn: list[list[Sample | None]] = [[None] * config.n for _ in prompts]
    left = [config.n] * len(prompts)
    start, tokens = time.perf_counter(), 0
    with progress_bar(progress, f"sampling {config.n} replies per prompt", len(prompts)) as advance:
        for batch in row_batches([len(p) for p in prefixes], config.n, batch_rows):
            distinct = sorted({p for p, _ in batch}, key=[p for p, _ in batch].index)
            decoded = decode_rows(
                lm,
                [prefixes[p] for p in distinct],
                [distinct.index(p) for p, _ in batch],
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                seeds=[reply_seed(config.seed, prefixes[p], i) for p, i in batch],
            )
            for (p, i), (reply, ended) in zip(batch, decoded, strict=True):
                text = lm.tokenizer.decode(reply, skip_special_tokens=True).strip()
                drawn[p][i] = Sample(text, len(reply), ended)
                tokens += len(reply)
                left[p] -= 1
                if left[p] == 0:
                    if on_prompt is not None:
                        on_prompt(p, drawn[p])  # type: ignore[arg-type]
                    advance(tokens_per_s=f"{tokens / (time.perf_counter() - start):.0f}")
    return drawn  # type: ignore[return-value]
