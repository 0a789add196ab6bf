"""Per-pair predictions of an evaluation (``predictions.jsonl``) and the most confidently wrong pairs.

One row per evaluated pair, in the input order: where the pair came from (``index``, and ``id`` /
``subset`` when the data has them), short excerpts of its texts when they are known, both scores,
the margin r_c − r_r, P(chosen ≻ rejected) = σ(margin), and ``correct`` (1, ½ for an exact tie in
score, 0; null for a pair labelled as a tie, which has no right order). The most confidently wrong
pairs are the wrong ones with the most negative margin: where the model was surest and the
annotators disagreed, the first pairs to read when looking for a label error or a learnt shortcut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.metrics import pairwise_correct
from rewardlab.evaluate.pairwise import PairwiseEval

EXCERPT_CHARS = 200
"""Characters of each text kept in ``predictions.jsonl`` and the report (whitespace collapsed)."""

WRONG_PAIRS_SHOWN = 5
"""How many of the most confidently wrong pairs the HTML report shows."""


def excerpt(text: str, limit: int = EXCERPT_CHARS, *, tail: bool = False) -> str:
    """``text`` with runs of whitespace made one space, cut to ``limit`` characters with "…".

    ``tail`` keeps the end instead of the start (a prompt's last turn is what the reply answers).
    Example: excerpt("a  b\\ncdef", 5) = "a b …"; with tail: "…cdef".
    """
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= limit:
        return flat
    return "…" + flat[-(limit - 1) :] if tail else flat[: limit - 1] + "…"


def prompt_text(prompt: Prompt) -> str:
    """A prompt as one text: itself, or a conversation's messages as ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in prompt)


def prediction_rows(result: PairwiseEval, pairs: Sequence[PreferencePair] | None = None) -> list[dict[str, Any]]:
    """One row per pair of ``result`` (see the module docstring); texts only when ``pairs`` are given."""
    chosen = np.asarray(result.chosen_scores, dtype=float)
    rejected = np.asarray(result.rejected_scores, dtype=float)
    if pairs is not None and len(pairs) != chosen.size:
        raise ValueError(f"{len(pairs)} pairs for {chosen.size} evaluated pairs: give the pairs that were evaluated")
    margin = chosen - rejected
    correct = pairwise_correct(chosen, rejected)
    probability = expit(margin)
    rows = []
    for i in range(chosen.size):
        row: dict[str, Any] = {"index": i}
        if pairs is not None:
            pair = pairs[i]
            row |= {"id": pair.id} if pair.id is not None else {}
            row |= {"subset": pair.subset} if pair.subset is not None else {}
            row |= {
                "prompt": excerpt(prompt_text(pair.prompt), tail=True),
                "chosen": excerpt(pair.chosen),
                "rejected": excerpt(pair.rejected),
            }
            if pair.rejected_prompt is not None:  # the rejected side was scored after its own prompt
                row["rejected_prompt"] = excerpt(prompt_text(pair.rejected_prompt), tail=True)
        row |= {
            "chosen_score": float(chosen[i]),
            "rejected_score": float(rejected[i]),
            "margin": float(margin[i]),
            "p_chosen": float(probability[i]),
            "correct": float(correct[i]) if result.ordered[i] else None,
        }
        rows.append(row)
    return rows


def confidently_wrong(rows: Sequence[dict[str, Any]], k: int = WRONG_PAIRS_SHOWN) -> list[dict[str, Any]]:
    """The ``k`` wrong rows (``correct`` 0) with the most negative margin, most confident first."""
    wrong = [row for row in rows if row["correct"] == 0.0]
    return sorted(wrong, key=lambda row: (row["margin"], row["index"]))[:k]


def predictions_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as JSON lines (UTF-8 text kept as is)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
