"""The paper's two measures: how well the LM still models clean text, and how often it writes bad text.

*Clean loss*: the mean −log π of the held-out tokens of good segments (control tokens and document
separators left out), the capability side of the paper's trade-off. *Undesirable rate*: the share of
unprompted samples that score below the threshold (the paper's "misalignment score" of samples,
§3), with Wilson's interval. Conditional training samples after ``<|good|>`` with ``<|bad|>`` blocked,
as the paper does at inference; the others sample after the end-of-text token alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.pretrain.blocks import Blocks
from rewardlab.pretrain.model import PretrainLM, control_token_ids
from rewardlab.pretrain.trainer import token_fields


@torch.inference_mode()
def clean_loss(model: PretrainLM, blocks: Blocks, batch_blocks: int = 16) -> float:
    """Mean −log π over the clean tokens of ``blocks`` (NaN when there are none)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_blocks):
        batch = blocks.select(range(start, min(start + batch_blocks, len(blocks))))
        logps = token_fields(model, batch)["logps"]
        mask = batch.is_clean[:, 1:]
        total += float(-(logps * mask).sum())
        count += int(mask.sum())
    return total / count if count else float("nan")


@torch.inference_mode()
def sample_documents(
    model: PretrainLM,
    tokenizer: PreTrainedTokenizerBase,
    n: int,
    max_new_tokens: int = 64,
    conditional: bool = False,
    seed: int = 0,
    batch: int = 32,
) -> list[str]:
    """``n`` unprompted samples (pure sampling, temperature 1), each ending at end-of-text or the limit;
    ``conditional`` starts them with ``<|good|>`` and never lets ``<|bad|>`` be drawn."""
    model.eval()
    prefix = [tokenizer.eos_token_id]
    blocked = None
    if conditional:
        good, bad = control_token_ids(tokenizer)
        prefix.append(good)
        blocked = [[bad]]
    texts: list[str] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, n, batch):
            rows = min(batch, n - start)
            input_ids = torch.tensor([prefix] * rows)
            out = model.lm.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                bad_words_ids=blocked,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts += tokenizer.batch_decode(out[:, len(prefix) :], skip_special_tokens=True)
    return texts


@dataclass(frozen=True)
class UndesirableRate:
    rate: float
    interval: tuple[float, float]
    n: int
    mean_score: float


def undesirable_rate(scores: Sequence[float], threshold: float) -> UndesirableRate:
    """The share of samples scoring below ``threshold``, with its 95 % Wilson interval."""
    if not scores:
        raise ValueError("no samples to judge")
    bad = sum(s < threshold for s in scores)
    return UndesirableRate(bad / len(scores), wilson_interval(bad, len(scores)), len(scores), sum(scores) / len(scores))
