"""R³, the Regularized Relevance Reward (Kim & Seo 2024, "Preference-free Alignment Learning with
Regularized Relevance Reward"): a preference-free reward from a retriever, with two inductive biases.

The paper finds that the retriever's relevance alone is hacked by RL (short replies that restate the
question, loops of the same phrase score as well as real answers), and regularises it with two
terms that keep each other in check. Per prompt x and reply y, with y's word tokens w_1..w_n:

    R³(x, y) = LI(y) · Rel(x, y) · RP(y)
    Rel(x, y) = cos(E(x), E(y))               (E: an embedding model, mean-pooled token states)
    LI(y)     = n / 100                        (length incentive)
    RP(y)     = |{distinct word trigrams}| / |{word trigrams}|, 1 when y has fewer than 3 words

The product means no term can be bought alone: length without relevance is worth nothing, and a
long reply that repeats itself is scaled down by its share of repeated trigrams. The authors' code
(naver-ai/RRR) scores Rel as Contriever's dot product; here E is all-MiniLM-L6-v2 by default, whose
sentence-transformers pipeline normalises the mean-pooled vector, so Rel is a cosine in [−1, 1].
Words are split as NLTK's ``wordpunct_tokenize`` splits them (runs of word characters, runs of
punctuation), which the authors use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rewardlab.data.records import Prompt
from rewardlab.models.embeddings import mean_pool

if TYPE_CHECKING:
    from torch import Tensor

LENGTH_SCALE = 100
"""Words per unit of length incentive (the paper's LI = n / 100)."""

_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def word_tokens(text: str) -> list[str]:
    """Runs of word characters and runs of punctuation: NLTK's ``wordpunct_tokenize``."""
    return _WORDPUNCT.findall(text)


def length_incentive(tokens: Sequence[str]) -> float:
    """LI(y) = n / 100, n the reply's word tokens: counters the retriever's taste for short replies."""
    return len(tokens) / LENGTH_SCALE


def repetition_penalty(tokens: Sequence[str]) -> float:
    """RP(y) = distinct trigrams / trigrams (1 below three words): 1 for a reply that never repeats a
    three-word phrase, 1/k for one phrase looped k times; keeps LI from being bought by repetition."""
    trigrams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    return len(set(trigrams)) / len(trigrams) if trigrams else 1.0


def regularized_relevance(relevance: float, reply: str) -> float:
    """R³(x, y) = LI(y) · Rel(x, y) · RP(y), given Rel(x, y) (see the module docstring)."""
    tokens = word_tokens(reply)
    return length_incentive(tokens) * relevance * repetition_penalty(tokens)


def query_text(prompt: Prompt) -> str:
    """What the retriever reads as the query: the prompt, or the user turns of a conversation joined
    (the authors drop the system prompt and the assistant's turns)."""
    if isinstance(prompt, str):
        return prompt
    return " ".join(m["content"] for m in prompt if m.get("role") == "user") or " ".join(m["content"] for m in prompt)


@dataclass
class RelevanceScorer:
    """R³ of each reply to its prompt, from an encoder (``AutoModel``) and its tokenizer."""

    encoder: Any
    tokenizer: Any
    max_length: int = 256
    batch_size: int = 32
    precision: str = "fp32"

    def relevance(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        """Rel(x, y) = cos(E(x), E(y)) for each prompt and its reply."""
        import torch

        queries, texts = [query_text(p) for p in prompts], list(replies)
        if len(queries) != len(texts):
            raise ValueError(f"got {len(queries)} prompts for {len(texts)} replies")
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            end = start + self.batch_size
            q, r = self.embed(queries[start:end]), self.embed(texts[start:end])
            out += torch.nn.functional.cosine_similarity(q, r, dim=-1).tolist()
        return out

    def embed(self, texts: list[str]) -> Tensor:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.encoder.device) for k, v in batch.items()}
        with torch.no_grad():
            hidden = self.encoder(**batch).last_hidden_state
        return mean_pool(hidden.float(), batch["attention_mask"])

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        relevances = self.relevance(prompts, replies)
        return [regularized_relevance(rel, reply) for rel, reply in zip(relevances, replies, strict=True)]


def load_relevance_scorer(model: str = "minilm", max_length: int = 256) -> RelevanceScorer:
    """The R³ scorer on an embedding model: ``minilm`` (all-MiniLM-L6-v2) or a local encoder folder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rewardlab.models.backbones import resolve_backbone
    from rewardlab.models.weight_files import require_safetensors

    path = require_safetensors(resolve_backbone(model), model, "AutoModel")
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
    encoder.eval()
    if torch.cuda.is_available():
        encoder.to("cuda")
    return RelevanceScorer(encoder, tokenizer, max_length=max_length)
