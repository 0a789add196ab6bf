"""Candidate augmentations of a preference pair for ConvexDA: synonym swaps from a fixed list.

ConvexDA (Shen et al. 2023; ``data/augment.py``) needs several candidate rewrites of each training
pair, of which it keeps the extreme ones. The candidates here swap words for synonyms from
``SYNONYMS``, a small fixed list shipped in this module, in the prompt and in both replies.

Why synonym swaps, and not word-order shuffles or span deletions: a rewrite must keep the human
label true. A synonym keeps what a reply says, so the chosen reply stays the better one; shuffling
clauses or deleting spans can break a reply (or remove the very sentence that made it better) and
would train the model on wrong labels. The list holds common words whose swap keeps grammar in
nearly any sentence (adjectives, adverbs and verbs of one form each, no nouns with articles); it
needs no download, and it is the same on every machine.

Deterministic: candidate j of a pair swaps each listed word (whole words, any case; the first
letter's case kept) with probability ``rate`` for a synonym chosen at random, both drawn from
``random.Random(f"{seed}:{content_key(pair)}:{j}")``, seeded by the pair's content, so a pair gets
the same candidates in every run and in any file order. A candidate equal to the original or to an
earlier candidate is dropped. A candidate carries the original's split key as its ``group`` (its
``group``, else its ``id``, else its content key, as ``data.split`` keys pairs), so re-splitting
the augmented pairs keeps each candidate in its original's split, and loses its ``id`` (an id names
one record).
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.data.split import content_key

SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("big", "large", "huge"),
    ("small", "little", "tiny"),
    ("quick", "fast", "rapid"),
    ("quickly", "rapidly", "swiftly"),
    ("happy", "glad", "pleased"),
    ("sad", "unhappy", "upset"),
    ("maybe", "perhaps", "possibly"),
    ("really", "truly", "genuinely"),
    ("very", "extremely", "highly"),
    ("often", "frequently", "regularly"),
    ("usually", "typically", "generally"),
    ("sometimes", "occasionally"),
    ("start", "begin"),
    ("buy", "purchase"),
    ("help", "assist"),
    ("answer", "reply", "respond"),
    ("good", "fine", "nice"),
    ("bad", "poor", "awful"),
    ("important", "crucial", "essential"),
    ("difficult", "hard", "tough"),
    ("easy", "simple"),
    ("smart", "clever", "bright"),
    ("angry", "mad", "furious"),
    ("scared", "afraid", "frightened"),
    ("strange", "odd", "weird"),
    ("dangerous", "risky", "unsafe"),
    ("illegal", "unlawful"),
    ("correct", "right", "accurate"),
    ("wrong", "incorrect", "mistaken"),
    ("enough", "sufficient"),
    ("also", "additionally"),
    ("however", "but", "though"),
    ("probably", "likely"),
    ("completely", "entirely", "totally"),
    ("certainly", "definitely", "surely"),
    ("idea", "notion"),
    ("kind", "type", "sort"),
    ("tell", "inform"),
    ("think", "believe"),
    ("need", "require"),
    ("want", "wish"),
    ("use", "employ"),
    ("show", "demonstrate"),
    ("try", "attempt"),
    ("choose", "pick", "select"),
    ("understand", "comprehend"),
    ("house", "home"),
    ("kids", "children"),
)
"""Interchangeable words; every word of a group may replace every other."""

SYNONYMS: dict[str, tuple[str, ...]] = {
    word: tuple(other for other in group if other != word) for group in SYNONYM_GROUPS for word in group
}
_WORD = re.compile(r"\b(" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_synonyms(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """``text`` with each word of ``SYNONYMS`` replaced, with probability ``rate``, by one of its
    synonyms (both choices from ``rng``, left to right); a capitalised word stays capitalised."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        other = rng.choice(SYNONYMS[word.lower()])
        return other.capitalize() if word[0].isupper() else other

    return _WORD.sub(swap, text)


def split_key(pair: PreferencePair) -> str:
    """What ``data.split`` assigns a pair by: its group, else its id, else its content."""
    return pair.group if pair.group is not None else pair.id if pair.id is not None else content_key(pair)


def synonym_candidates(pair: PreferencePair, k: int, *, seed: int = 0, rate: float = 0.5) -> list[PreferencePair]:
    """Up to ``k`` distinct rewrites of ``pair`` by ``swap_synonyms`` (module docstring)."""
    if k < 0:
        raise ValueError(f"the number of candidates must be at least 0 (got {k})")
    if not 0 < rate <= 1:
        raise ValueError(f"the swap rate must be in (0, 1] (got {rate})")
    key, group = content_key(pair), split_key(pair)
    seen = {(_prompt_key(pair.prompt), pair.chosen, pair.rejected)}
    out = []
    for j in range(k):
        rng = random.Random(f"{seed}:{key}:{j}")
        prompt = _swap_prompt(pair.prompt, rng, rate)
        chosen, rejected = swap_synonyms(pair.chosen, rng, rate), swap_synonyms(pair.rejected, rng, rate)
        texts = (_prompt_key(prompt), chosen, rejected)
        if texts in seen or chosen == rejected:
            continue
        seen.add(texts)
        source = f"{pair.source} (synonym candidate {j})" if pair.source else f"synonym candidate {j}"
        out.append(replace(pair, prompt=prompt, chosen=chosen, rejected=rejected, id=None, group=group, source=source))
    return out


def _swap_prompt(prompt: Prompt, rng: random.Random, rate: float) -> Prompt:
    if isinstance(prompt, str):
        return swap_synonyms(prompt, rng, rate)
    return tuple({**m, "content": swap_synonyms(m["content"], rng, rate)} for m in prompt)


def _prompt_key(prompt: Prompt) -> object:
    return prompt if isinstance(prompt, str) else tuple(tuple(sorted(m.items())) for m in prompt)
