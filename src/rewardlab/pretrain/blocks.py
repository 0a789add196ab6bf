"""Documents to fixed-length training blocks, each token carrying its segment's score.

As in the paper's data pipeline, documents are tokenized segment by segment, each preceded by the
end-of-text token, concatenated into one stream and cut into blocks of ``block_tokens`` (the last
partial block is dropped). Every token carries the score of its segment, so token-level objectives
(unlikelihood, RWR, AWR) can read it. Conditional training puts ``<|good|>`` or ``<|bad|>`` before
each segment by its score (Korbak et al. 2023, §2: "the control token ... prepended to each
sentence"); filtering drops whole documents whose mean segment score is below the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from rewardlab.pretrain.corpus import Document
from rewardlab.pretrain.model import control_token_ids
from rewardlab.pretrain.objectives import Data


@dataclass(frozen=True)
class Blocks:
    """(n, block_tokens) tensors: token ids, their segment's score, whether that segment is bad, and
    whether the token is clean text (a good segment's own token: no separator, no control token)."""

    ids: Tensor
    scores: Tensor
    is_bad: Tensor
    is_clean: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def select(self, rows: Tensor | Sequence[int]) -> Blocks:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Blocks(self.ids[rows], self.scores[rows], self.is_bad[rows], self.is_clean[rows])


def document_score(scores: Sequence[float]) -> float:
    """A document's score for filtering: the mean of its segments' (the reference code's avg_score)."""
    return sum(scores) / len(scores)


def keep_documents(
    documents: Sequence[Document], scores: Sequence[Sequence[float]], threshold: float
) -> tuple[list[Document], list[list[float]]]:
    """Filtering's data: the documents whose mean segment score is at or above ``threshold``."""
    kept = [(d, list(s)) for d, s in zip(documents, scores, strict=True) if document_score(s) >= threshold]
    return [d for d, _ in kept], [s for _, s in kept]


def encode_documents(
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Document],
    scores: Sequence[Sequence[float]],
    threshold: float,
    block_tokens: int,
    data: Data = "plain",
) -> Blocks:
    """Pack ``documents`` (and their per-segment ``scores``) into blocks; ``data="conditional"`` adds the
    control tokens (``"filtered"`` expects documents already filtered by :func:`keep_documents`)."""
    if block_tokens < 2:
        raise ValueError(f"block_tokens must be >= 2 (got {block_tokens})")
    good, bad = control_token_ids(tokenizer) if data == "conditional" else (-1, -1)
    ids: list[int] = []
    token_scores: list[float] = []
    token_bad: list[bool] = []
    clean: list[bool] = []
    texts = [seg for doc in documents for seg in doc.segments]
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    for doc, doc_scores in zip(documents, scores, strict=True):
        if len(doc_scores) != len(doc.segments):
            raise ValueError(f"a document has {len(doc.segments)} segments but {len(doc_scores)} scores")
        first_score = doc_scores[0] if doc_scores else 0.0
        ids.append(tokenizer.eos_token_id)
        token_scores.append(first_score)
        token_bad.append(first_score < threshold)
        clean.append(False)
        for score in doc_scores:
            is_bad = score < threshold
            segment = next(encoded)
            if data == "conditional":
                segment = [bad if is_bad else good, *segment]
            ids += segment
            token_scores += [score] * len(segment)
            token_bad += [is_bad] * len(segment)
            clean += [not is_bad] * len(segment)
            if data == "conditional":
                clean[-len(segment)] = False
    n = len(ids) // block_tokens
    if n == 0:
        raise ValueError(f"the corpus gives {len(ids)} tokens, fewer than one block of {block_tokens}")
    cut = n * block_tokens
    return Blocks(
        torch.tensor(ids[:cut]).view(n, block_tokens),
        torch.tensor(token_scores[:cut], dtype=torch.float32).view(n, block_tokens),
        torch.tensor(token_bad[:cut]).view(n, block_tokens),
        torch.tensor(clean[:cut]).view(n, block_tokens),
    )
