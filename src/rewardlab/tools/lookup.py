"""The lookup tool: the passages of a folder of local documents most relevant to the question (BM25).

Okapi BM25 (Robertson & Zaragoza 2009) scores passage d for query q as

    Σ_{t ∈ q} idf(t) · f(t, d)·(k₁ + 1) / (f(t, d) + k₁·(1 − b + b·|d| / avgdl)),
    idf(t) = log(1 + (N − n_t + 0.5) / (n_t + 0.5)),

with k₁ = 1.5, b = 0.75; passages are the documents' paragraphs (``.txt`` and ``.md`` files).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rewardlab.data.records import Prompt

WORD = re.compile(r"\w+")
K1, B = 1.5, 0.75


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Passage:
    source: str
    text: str


class DocumentIndex:
    """The paragraphs of every ``.txt`` and ``.md`` file under ``folder``, ready for BM25."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of documents (the lookup tool reads .txt and .md files)")
        self.passages = [
            Passage(str(path.relative_to(folder)), paragraph.strip())
            for path in sorted(folder.rglob("*"))
            if path.suffix in (".txt", ".md") and path.is_file()
            for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
            if paragraph.strip()
        ]
        if not self.passages:
            raise ValueError(f"{folder}: holds no .txt or .md text to look up")
        self.counts = [Counter(words(p.text)) for p in self.passages]
        self.lengths = [sum(c.values()) for c in self.counts]
        self.mean_length = sum(self.lengths) / len(self.lengths)
        documents = Counter(word for c in self.counts for word in c)
        n = len(self.passages)
        self.idf = {word: math.log(1 + (n - k + 0.5) / (k + 0.5)) for word, k in documents.items()}

    def scores(self, query: str) -> list[float]:
        terms = set(words(query))
        return [
            sum(
                self.idf[t] * c[t] * (K1 + 1) / (c[t] + K1 * (1 - B + B * length / self.mean_length))
                for t in terms
                if t in c
            )
            for c, length in zip(self.counts, self.lengths, strict=True)
        ]

    def top(self, query: str, k: int = 2) -> list[Passage]:
        """The ``k`` best passages with a positive score, best first."""
        scores = self.scores(query)
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [self.passages[i] for i in ranked[:k] if scores[i] > 0]


def question_text(prompt: Prompt) -> str:
    """The prompt's text (a conversation's user turns)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt if m["role"] == "user")


def lookup_report(index: DocumentIndex, prompt: Prompt, reply: str) -> str | None:
    """The two passages most relevant to the question, with their file; None when nothing matches."""
    found = index.top(question_text(prompt))
    return "\n".join(f"[{p.source}] {p.text[:500]}" for p in found) or None
