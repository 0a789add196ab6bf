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


def kfold_splits(
    pairs: list[PreferencePair],
    folds: int,
    *,
    validation: float = 0.1,
    seed: int = 0,
    rankings: list[Ranking] = (),
) -> list[Splits]:
    """``folds`` splits for k-fold cross-validation: fold i tests on the i-th of ``folds`` disjoint
    parts of ``pairs``, validates on a fixed slice of the others and trains on the rest.

    The unit is the key :func:`split_pairs` uses (a pair's ``group``, else its id, else its content),
    so one prompt's pairs are never on both sides of a fold. Groups are dealt out in the order of a
    seeded hash of their key, each to the part with the fewest pairs so far: the parts differ in size
    by at most one group. Validation takes ``validation`` of *all* pairs (as :func:`split_pairs` does),
    whole groups, in the order of a second seeded hash: with 5 folds and the default 0.1 each fold
    trains on 70 %, validates on 10 % and tests on 20 %, the proportions of ``rewardlab train``'s
    split. The test part is never in a fold's validation or training pairs.
    """
    if not (math.isfinite(validation) and 0 <= validation < 1):
        raise ValueError(f"validation fraction must be between 0 and 1, got {validation}")
    contents = [content_key(pair) for pair in pairs]
    keys = [p.group if p.group is not None else p.id if p.id is not None else contents[i] for i, p in enumerate(pairs)]
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    if folds < 2:
        raise ValueError(f"folds must be at least 2 (got {folds})")
    if folds > len(members):
        raise ValueError(f"folds must be at most the number of prompt groups in the data, {len(members)} (got {folds})")
    part_of: dict[str, int] = {}
    sizes = [0] * folds
    for key in sorted(members, key=lambda k: (_digest(f"{seed}:{k}"), k)):
        part = min(range(folds), key=lambda f: (sizes[f], f))
        part_of[key] = part
        sizes[part] += len(members[key])
    quota = round(validation * len(pairs))
    validation_order = sorted(members, key=lambda k: (_digest(f"{seed}:validation:{k}"), k))
    result = []
    for fold in range(folds):
        placed = {key: "test" for key in members if part_of[key] == fold}
        held = 0
        for key in validation_order:
            if key not in placed:
                placed[key] = "validation" if held < quota else "train"
                held += len(members[key]) if placed[key] == "validation" else 0
        parts = {
            name: [pairs[i] for i, key in enumerate(keys) if placed[key] == name]
            for name in ("train", "validation", "test")
        }
        ranked = {name: [r for r in rankings if placed.get(r.group) == name] for name in parts}
        result.append(
            Splits(
                train=parts["train"],
                validation=parts["validation"],
                test=parts["test"],
                train_rankings=ranked["train"],
                validation_rankings=ranked["validation"],
                test_rankings=ranked["test"],
            )
        )
    return result


def content_key(pair: PreferencePair) -> str:
    """A stable digest of what was compared: prompt (a conversation as JSON), chosen and rejected, and
    the rejected side's own prompt where it has one."""
    prompt = pair.prompt if isinstance(pair.prompt, str) else list(pair.prompt)
    compared = [prompt, pair.chosen, pair.rejected]
    if pair.rejected_prompt is not None:
        other = pair.rejected_prompt
        compared.append(other if isinstance(other, str) else list(other))
    text = json.dumps(compared, ensure_ascii=False, sort_keys=True)
    return _digest(text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
