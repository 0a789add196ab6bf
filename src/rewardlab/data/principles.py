"""A principle-following set with known answers, built from real replies (RewardAnything, Yu et al. 2025).

RewardAnything ("Generalizable Principle-Following Reward Models"; only its abstract was read)
asks a reward model to judge by a natural-language principle given with the task, and measures
whether its preferences follow the principle. Here the answer is known by construction: each
principle is a checkable property of a reply (its length, a list, a question, digits, a word), and
a pair of real replies (same prompt) is used only when exactly one reply has the property. Each
pair appears twice, under a principle and under its opposite ("prefer the shorter reply" / "prefer
the longer, more detailed reply"), with ``chosen`` swapped: a **flip-set**. A scorer that ignores
the principle gives both rows the same two scores, so it is right on exactly one of the two.

Rows are ordinary preference rows (``prompt``, ``chosen``, ``rejected``) whose ``context`` is the
principle (stated before the prompt by ``data/context.py``), ``subset`` the principle's name and
``group`` the flip-set; ``word`` holds the word of a ``mentions`` principle and ``origin`` the line
of the source file the two replies came from. ``build_principle_set`` makes the embedded
``embedded/principles.jsonl`` from the embedded HH-RLHF harmless pairs and
``data/ultrafeedback-binarized-1000.jsonl`` (both MIT); ``tests/test_principles.py`` rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.data.loading import load_preferences
from rewardlab.data.records import PreferencePair

PRINCIPLE_SET = "principles"
"""The name that selects the embedded principle set (``rewardlab eval MODEL principles``)."""

ULTRAFEEDBACK = "data/ultrafeedback-binarized-1000.jsonl"
"""The second source, in the repository (not the package), relative to its root."""

_FILE = "principles.jsonl"
MAX_CHARS = 800
"""Longest prompt plus reply used, so the principle, prompt and reply fit MiniLM's 256 tokens."""

_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.M)
_WORD = re.compile(r"[A-Za-z]+")
_COMMON = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "because",
        "before",
        "being",
        "below",
        "between",
        "could",
        "didn",
        "doesn",
        "during",
        "every",
        "first",
        "going",
        "having",
        "other",
        "their",
        "there",
        "these",
        "thing",
        "things",
        "think",
        "those",
        "through",
        "under",
        "until",
        "where",
        "which",
        "while",
        "would",
        "should",
        "might",
        "really",
        "people",
        "right",
        "sorry",
        "something",
        "someone",
        "also",
        "",
    ]
)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def word_count(text: str) -> int:
    return len(text.split())


def has_list(text: str) -> bool:
    """At least two lines that start with a bullet (-, *, •) or a number (1. or 1))."""
    return len(_LIST_LINE.findall(text)) >= 2


def has_question(text: str) -> bool:
    return "?" in text


def has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def mentions(text: str, word: str) -> bool:
    return word.lower() in _words(text)


@dataclass(frozen=True)
class Principle:
    """A principle and the property of a reply it prefers, ``holds(reply, word)``; None for the length
    principles, which compare the two replies (``prefers``)."""

    name: str
    text: str
    holds: Callable[[str, str | None], bool] | None = None


PRINCIPLES: dict[str, Principle] = {
    p.name: p
    for p in (
        Principle("shorter", "Prefer the shorter, more concise reply."),
        Principle("longer", "Prefer the longer, more detailed reply."),
        Principle("list", "Prefer the reply formatted as a bulleted or numbered list.", lambda t, _: has_list(t)),
        Principle("no-list", "Prefer the reply written as prose, without a list.", lambda t, _: not has_list(t)),
        Principle("question", "Prefer the reply that asks the user a question.", lambda t, _: has_question(t)),
        Principle("no-question", "Prefer the reply that asks the user no question.", lambda t, _: not has_question(t)),
        Principle("digits", "Prefer the reply that contains numbers written in digits.", lambda t, _: has_digit(t)),
        Principle("no-digits", "Prefer the reply that contains no digits.", lambda t, _: not has_digit(t)),
        Principle("mentions", 'Prefer the reply that uses the word "{word}".', lambda t, w: mentions(t, w or "")),
        Principle(
            "avoids", 'Prefer the reply that does not use the word "{word}".', lambda t, w: not mentions(t, w or "")
        ),
    )
}
"""The principles by name; their texts are what a scorer is given (``{word}`` filled in)."""

FLIPS = (
    ("shorter", "longer"),
    ("list", "no-list"),
    ("question", "no-question"),
    ("digits", "no-digits"),
    ("mentions", "avoids"),
)
"""The principle pairs whose answers are opposite on the same two replies."""


def prefers(name: str, a: str, b: str, word: str | None = None) -> bool | None:
    """Whether principle ``name`` prefers reply ``a`` to ``b``; None when it does not separate them.

    Length principles separate two replies when one has at least twice the words of the other and
    10 more; the others when exactly one reply has the property.
    """
    if name in ("shorter", "longer"):
        short, long = sorted((word_count(a), word_count(b)))
        if long < 2 * short or long - short < 10:
            return None
        return (word_count(a) < word_count(b)) == (name == "shorter")
    holds = PRINCIPLES[name].holds
    assert holds is not None  # every principle but the two length ones has a property
    first, second = holds(a, word), holds(b, word)
    return None if first == second else first


def distinguishing_word(prompt: str, a: str, b: str, key: str) -> str | None:
    """A content word (5+ letters, not a common one) in exactly one reply and not in the prompt,
    picked by a digest of ``key`` so the choice is fixed; None when there is none."""
    in_a, in_b, in_prompt = set(_words(a)), set(_words(b)), set(_words(prompt))
    candidates = sorted(w for w in in_a ^ in_b if len(w) >= 5 and w not in _COMMON and w not in in_prompt)
    if not candidates:
        return None
    return candidates[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(candidates)]


def flip_set(pair: PreferencePair, kind: tuple[str, str], group: str, origin: str) -> list[dict] | None:
    """The two rows of one flip-set (``kind`` = a principle and its opposite) for ``pair``'s replies."""
    if not isinstance(pair.prompt, str):
        return None
    a, b = pair.chosen, pair.rejected
    word = distinguishing_word(pair.prompt, a, b, group) if kind[0] == "mentions" else None
    if kind[0] == "mentions" and word is None:
        return None
    rows = []
    for name in kind:
        preferred = prefers(name, a, b, word)
        if preferred is None:
            return None
        chosen, rejected = (a, b) if preferred else (b, a)
        row = {
            "id": f"{group}-{name}",
            "group": group,
            "subset": name,
            "context": PRINCIPLES[name].text.format(word=word),
            "prompt": pair.prompt,
            "chosen": chosen,
            "rejected": rejected,
        }
        rows.append({**row, **({"word": word} if word else {}), "origin": origin})
    return rows


def build_principle_set(sources: Iterable[tuple[str, Sequence[PreferencePair]]], per_kind: int = 20) -> list[dict]:
    """``per_kind`` flip-sets of each principle pair in ``FLIPS``, from the named sources' pairs.

    Pairs are visited in a fixed order (by a digest of their origin); each is used at most once,
    for the first principle pair, in ``FLIPS`` order, that still needs flip-sets and separates its
    two replies. Only text prompts with non-blank replies and at most ``MAX_CHARS`` characters of
    prompt plus longer reply are used.
    """
    candidates = []
    for name, pairs in sources:
        for pair in pairs:
            fits = len(pair.prompt) + max(len(pair.chosen), len(pair.rejected)) <= MAX_CHARS
            if isinstance(pair.prompt, str) and pair.chosen.strip() and pair.rejected.strip() and fits:
                origin = f"{name}:{(pair.source or '').rsplit(':', 1)[-1]}"
                candidates.append((hashlib.sha256(origin.encode()).hexdigest(), origin, pair))
    counts = dict.fromkeys(FLIPS, 0)
    rows: list[dict] = []
    for _, origin, pair in sorted(candidates, key=lambda c: c[0]):
        for kind in FLIPS:
            if counts[kind] >= per_kind:
                continue
            made = flip_set(pair, kind, f"p{len(rows) // 2:03d}", origin)
            if made:
                rows += made
                counts[kind] += 1
                break
        if all(n >= per_kind for n in counts.values()):
            break
    return rows


def principle_set_path() -> Path:
    """Where the embedded principle set lies inside the installed package."""
    return Path(str(resources.files("rewardlab.data") / "embedded" / _FILE))


def embedded_sources(ultrafeedback: str | Path = ULTRAFEEDBACK) -> list[tuple[str, list[PreferencePair]]]:
    """The pairs the embedded set is drawn from, named as its ``origin`` fields name them."""
    return [
        ("hh-rlhf-harmless-test", load_preferences(None).pairs),
        ("ultrafeedback-binarized-1000", load_preferences(ultrafeedback, skip_bad_rows=True).pairs),
    ]


def principle_set_jsonl(rows: Sequence[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_principle_set(ultrafeedback: str | Path = ULTRAFEEDBACK, path: str | Path | None = None) -> Path:
    """(Re)build the embedded set from its sources (run from the repository root)."""
    path = Path(path) if path else principle_set_path()
    write_text_atomic(path, principle_set_jsonl(build_principle_set(embedded_sources(ultrafeedback))))
    return path
