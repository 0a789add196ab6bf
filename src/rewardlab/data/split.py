"""Split pairs into train, validation and test sets the same way on every run and machine.

Each pair goes to a split by a sha256 hash of its id (or content), not by a random generator whose
stream could change between Python versions, so a pair never moves between splits when the file is
reordered or grows.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from rewardlab.data.records import PreferencePair, Ranking


@dataclass
class Splits:
    """Disjoint train, validation and test lists, each in the original file order (rankings beside
    the pairs drawn from them)."""

    train: list[PreferencePair] = field(default_factory=list)
    validation: list[PreferencePair] = field(default_factory=list)
    test: list[PreferencePair] = field(default_factory=list)
    train_rankings: list[Ranking] = field(default_factory=list)
    validation_rankings: list[Ranking] = field(default_factory=list)
    test_rankings: list[Ranking] = field(default_factory=list)


def split_pairs(
    pairs: list[PreferencePair],
    *,
    validation: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    rankings: list[Ranking] = (),
) -> Splits:
    """Put ``test`` and ``validation`` fractions of ``pairs`` aside, deterministically for ``seed``.

    Pairs of one ``group`` (drawn from one k-wise or tree record) stay together, so no prompt's
    replies are both trained on and tested; a ranking goes where the pairs of its group go.
    """
    for name, fraction in (("validation", validation), ("test", test)):
        if not (math.isfinite(fraction) and 0 <= fraction < 1):
            raise ValueError(f"{name} fraction must be between 0 and 1, got {fraction}")
    if validation + test >= 1:
        raise ValueError(f"validation + test fractions must leave some pairs for training, got {validation} + {test}")
    contents = [content_key(pair) for pair in pairs]
    keys = [p.group if p.group is not None else p.id if p.id is not None else contents[i] for i, p in enumerate(pairs)]
    order = sorted(range(len(pairs)), key=lambda i: (_digest(f"{seed}:{keys[i]}"), contents[i]))
    quota = {"test": round(test * len(pairs)), "validation": round(validation * len(pairs))}
    placed: dict[str, str] = {}
    parts: dict[str, list[int]] = {"test": [], "validation": [], "train": []}
    for i in order:
        if keys[i] not in placed:  # a whole group goes to the first split with room left when it is met
            placed[keys[i]] = next((name for name in ("test", "validation") if len(parts[name]) < quota[name]), "train")
        parts[placed[keys[i]]].append(i)
    chosen = {name: [pairs[i] for i in sorted(part)] for name, part in parts.items()}
    ranked = {name: [r for r in rankings if placed.get(r.group) == name] for name in parts}
    return Splits(
        train=chosen["train"],
        validation=chosen["validation"],
        test=chosen["test"],
        train_rankings=ranked["train"],
        validation_rankings=ranked["validation"],
        test_rankings=ranked["test"],
    )


def content_key(pair: PreferencePair) -> str:
    """A stable digest of what was compared: prompt (a conversation as JSON), chosen and rejected."""
    prompt = pair.prompt if isinstance(pair.prompt, str) else list(pair.prompt)
    text = json.dumps([prompt, pair.chosen, pair.rejected], ensure_ascii=False, sort_keys=True)
    return _digest(text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
