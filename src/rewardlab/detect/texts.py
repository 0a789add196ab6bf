"""A detection set from human answers: the LM's own reply to each question, and the human answer
partly rewritten by the LM (mixed text).

Mixed text here keeps the first half of the human answer's sentences and lets the LM write the rest
(one sentence: its first half of words). ReMoDetect (Lee et al. 2024, §3.2) rephrases part of a human
text with the aligned LM so that the result sits between human and LM text; continuing a human
opening is the simplest such partial rewrite a decoder without an editing prompt can make.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

from rewardlab.data.readers import read_json_file
from rewardlab.data.records import DataError
from rewardlab.detect.records import DetectionRecord
from rewardlab.models.causal_lm import CausalLM
from rewardlab.progress import progress_bar
from rewardlab.sampling.batched import decode_rows, reply_seed, row_batches, sample_replies_batched
from rewardlab.sampling.generation import SampleConfig, prompt_prefix

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def human_answers(path: str | Path, *, question: str = "question", answer: str = "gold") -> list[tuple[str, str]]:
    """(question, human answer) from a JSON array of objects (FineGrainedRLHF's QA file: ``question`` and
    ``gold``, ASQA's long-form answers written by people); a bad element raises ``DataError``."""
    rows = read_json_file(path)
    if not isinstance(rows, list):
        raise DataError(str(path), "is not a JSON array of objects")
    found = []
    for index, row in enumerate(rows):
        location = f"{path}[{index}]"
        if not isinstance(row, dict):
            raise DataError(location, "is not an object")
        for name in (question, answer):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError(location, "is missing or empty (expected non-empty text)", name)
        found.append((row[question].strip(), row[answer].strip()))
    return found


def kept_opening(text: str, share: float = 0.5) -> str:
    """The opening of ``text`` a mixed text keeps: the first ceil(share·n) of its n sentences when it
    has several, else the first ceil(share·w) of its w words; at least one, and never the whole text
    when it has two sentences or words to split."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1) (got {share})")
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if len(sentences) > 1:
        return " ".join(sentences[: min(len(sentences) - 1, math.ceil(share * len(sentences)))])
    words = text.split()
    return " ".join(words[: max(1, min(len(words) - 1, math.ceil(share * len(words))))])


def lm_replies(
    lm: CausalLM, prompts: Sequence[str], *, max_new_tokens: int, temperature: float, seed: int, progress: bool
) -> list[str]:
    """One sampled reply per prompt from rewardlab's batched decoder."""
    config = SampleConfig(n=1, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    drawn = sample_replies_batched(lm, prompts, config, batch_rows=32, progress=progress)
    return [samples[0].text for samples in drawn]


def lm_continuations(
    lm: CausalLM,
    prompts: Sequence[str],
    openings: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_rows: int = 32,
    progress: bool = False,
) -> list[str]:
    """Each opening as the start of the LM's reply to its prompt, continued by the LM: the whole text
    (opening and continuation, decoded together so no space is lost at the seam), or "" where the LM
    ended the reply at once (the opening alone would pass human text off as mixed)."""
    prefixes = [prompt_prefix(lm, p) + lm.tokens(o) for p, o in zip(prompts, openings, strict=True)]
    opening_tokens = [lm.tokens(o) for o in openings]
    texts = [""] * len(prompts)
    with progress_bar(progress, "continuing human openings", len(prompts)) as advance:
        for batch in row_batches([len(p) for p in prefixes], 1, batch_rows):
            rows = [p for p, _ in batch]
            decoded = decode_rows(
                lm,
                [prefixes[p] for p in rows],
                list(range(len(rows))),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seeds=[reply_seed(seed, prefixes[p], 0) for p in rows],
            )
            for p, (reply, _) in zip(rows, decoded, strict=True):
                if reply:
                    texts[p] = lm.tokenizer.decode(opening_tokens[p] + reply, skip_special_tokens=True).strip()
            advance(len(rows))
    return texts


def detection_records(
    pairs: Sequence[tuple[str, str]],
    lm: CausalLM,
    *,
    mixed: bool = True,
    max_new_tokens: int = 128,
    temperature: float = 0.7,
    seed: int = 0,
    progress: bool = False,
) -> list[DetectionRecord]:
    """For every (question, human answer): the human record, the LM's reply, and (``mixed``) the human
    opening continued by the LM."""
    prompts = [q for q, _ in pairs]
    replies = lm_replies(
        lm, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=progress
    )
    continued: list[str] = []
    if mixed:
        openings = [kept_opening(a) for _, a in pairs]
        continued = lm_continuations(
            lm,
            prompts,
            openings,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            progress=progress,
        )
    records = []
    for i, (question, answer) in enumerate(pairs):
        records.append(DetectionRecord(question, answer, "human"))
        if replies[i].strip():
            records.append(DetectionRecord(question, replies[i], "lm"))
        if mixed and continued[i].strip():
            records.append(DetectionRecord(question, continued[i], "mixed"))
    return records


def split_prompts(prompts: Sequence[str], test_fraction: float, seed: int = 0) -> tuple[set[str], set[str]]:
    """(train, test) prompts: each prompt's side fixed by a hash of (seed, prompt), so no prompt's texts
    are both tuned on and tested, and adding prompts does not move the others."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1) (got {test_fraction})")
    distinct = sorted(set(prompts), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    cut = max(1, round(test_fraction * len(distinct)))
    return set(distinct[cut:]), set(distinct[:cut])
