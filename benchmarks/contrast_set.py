"""Contrast sets from the project's real data, built as Contrast Instructions are (Shen et al. 2023).

Two prompts whose words overlap a lot (token Jaccard in [min_overlap, max_overlap)) but whose chosen
replies do not (Jaccard below ``max_reply_overlap``) make a contrast pair: each prompt's own chosen
reply is its right answer, the other prompt's chosen reply its wrong one (``rewardlab eval
--contrast``'s default). Pairs are matched greedily, most similar first, each prompt used once;
prompts that are (nearly) the same question (overlap ≥ max_overlap) are skipped, since there the
other reply is not wrong.

Two sets, both never trained on by a default ``rewardlab train`` run:

- ``hh``: the validation and test splits of the embedded HH-RLHF harmless pairs (Anthropic, MIT);
- ``uf``: ``data/ultrafeedback-binarized-1000.jsonl`` (UltraFeedback, Cui et al. 2023, MIT; a
  different source, so out of distribution), whose templated tasks give many lexical twins.

    python benchmarks/contrast_set.py OUT_DIR      # writes OUT_DIR/contrast-hh.jsonl, contrast-uf.jsonl
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.data_split import load_pairs

TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
ROLE_WORDS = {"human", "assistant"}


def tokens(text: Prompt) -> frozenset[str]:
    if not isinstance(text, str):
        text = " ".join(m["content"] for m in text)
    return frozenset(TOKEN.findall(text.lower())) - ROLE_WORDS


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def lexical_contrast_pairs(
    pairs: list[PreferencePair], min_overlap: float = 0.4, max_overlap: float = 0.9, max_reply_overlap: float = 0.5
) -> list[dict]:
    """Contrast-pair rows (``prompt_a``, ``chosen_a``, ``prompt_b``, ``chosen_b``, ``overlap``)."""
    pairs = [p for p in pairs if p.chosen.strip()]  # a blank reply cannot be anyone's right answer
    prompts, replies = [tokens(p.prompt) for p in pairs], [tokens(p.chosen) for p in pairs]
    candidates = []
    for i, j in itertools.combinations(range(len(pairs)), 2):
        overlap = jaccard(prompts[i], prompts[j])
        if min_overlap <= overlap < max_overlap and jaccard(replies[i], replies[j]) < max_reply_overlap:
            candidates.append((-overlap, i, j))
    used: set[int] = set()
    rows = []
    for negative, i, j in sorted(candidates):
        if i in used or j in used:
            continue
        used |= {i, j}
        a, b = pairs[i], pairs[j]
        rows.append(
            {
                "prompt_a": a.prompt if isinstance(a.prompt, str) else list(a.prompt),
                "chosen_a": a.chosen,
                "prompt_b": b.prompt if isinstance(b.prompt, str) else list(b.prompt),
                "chosen_b": b.chosen,
                "overlap": round(-negative, 4),
            }
        )
    return rows


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets = {
        "hh": load_pairs("default", split="validation") + load_pairs("default", split="test"),
        "uf": load_pairs("data/ultrafeedback-binarized-1000.jsonl", skip_bad_rows=True),
    }
    for name, pairs in sets.items():
        rows = lexical_contrast_pairs(pairs)
        path = out / f"contrast-{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} contrast pairs from {len(pairs)} pairs")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/contrast")
