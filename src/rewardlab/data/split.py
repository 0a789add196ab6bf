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

from rewardlab.data.records import PreferencePair


@dataclass
class Splits:
    """Disjoint train, validation and test lists, each in the original file order."""

    train: list[PreferencePair] = field(default_factory=list)
    validation: list[PreferencePair] = field(default_factory=list)
    test: list[PreferencePair] = field(default_factory=list)


def split_pairs(pairs: list[PreferencePair], *, validation: float = 0.1, test: float = 0.2, seed: int = 0) -> Splits:
    """Put ``test`` and ``validation`` fractions of ``pairs`` aside, deterministically for ``seed``."""
    for name, fraction in (("validation", validation), ("test", test)):
        if not (math.isfinite(fraction) and 0 <= fraction < 1):
            raise ValueError(f"{name} fraction must be between 0 and 1, got {fraction}")
    if validation + test >= 1:
        raise ValueError(f"validation + test fractions must leave some pairs for training, got {validation} + {test}")
    contents = [content_key(pair) for pair in pairs]
    order = sorted(
        range(len(pairs)),
        key=lambda i: (
            _digest(f"{seed}:{pairs[i].id if pairs[i].id is not None else contents[i]}"),
            contents[i],
        ),
    )
    n_test = round(test * len(pairs))
    n_validation = round(validation * len(pairs))
    parts = order[:n_test], order[n_test : n_test + n_validation], order[n_test + n_validation :]
    test_pairs, validation_pairs, train_pairs = ([pairs[i] for i in sorted(part)] for part in parts)
    return Splits(train=train_pairs, validation=validation_pairs, test=test_pairs)


def content_key(pair: PreferencePair) -> str:
    """A stable digest of what was compared: prompt (a conversation as JSON), chosen and rejected."""
    prompt = pair.prompt if isinstance(pair.prompt, str) else list(pair.prompt)
    text = json.dumps([prompt, pair.chosen, pair.rejected], ensure_ascii=False, sort_keys=True)
    return _digest(text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
