"""Synthetic preference data from a known true reward, for tests with a known answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

GOOD = ["helpful", "clear", "correct", "kind", "precise", "honest", "safe", "useful"]
BAD = ["rude", "wrong", "vague", "harmful", "sloppy", "false", "unsafe", "useless"]
NEUTRAL = ["the", "answer", "is", "here", "today", "maybe", "also", "then"]
WEIGHTS = {**{w: 1.0 for w in GOOD}, **{w: -1.0 for w in BAD}, **{w: 0.0 for w in NEUTRAL}}


def true_reward(text: str) -> float:
    """A linear reward: +1 per good word, -1 per bad word."""
    return sum(WEIGHTS.get(word, 0.0) for word in text.split())


def synthetic_pairs(n: int, seed: int = 0, words: int = 6) -> list[dict]:
    """Pairs whose chosen reply has the higher true reward (no ties)."""
    rng = random.Random(seed)
    vocab = list(WEIGHTS)
    rows: list[dict] = []
    while len(rows) < n:
        a, b = (" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(2))
        if true_reward(a) == true_reward(b):
            continue
        chosen, rejected = (a, b) if true_reward(a) > true_reward(b) else (b, a)
        rows.append({"prompt": f"question {len(rows) % 7}", "chosen": chosen, "rejected": rejected})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
