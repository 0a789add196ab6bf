"""Does the reward model notice what matters and ignore what does not?

Two checks, each a pure function of scores plus a small driver that asks a scorer for them:

- **Contrast pairs** (Shen et al. 2023, "The Trickle-down Impact of Reward (In-)consistency on
  RLHF", Contrast Instructions): two lexically similar prompts whose right answers differ. A model
  that reads only the surface ranks the same reply first for both; a consistent one ranks each
  prompt's own right answer first, on both prompts.
- **Invariance to harmless rewrites**: extra whitespace, the order the replies are scored in, and
  how many are scored at a time should not change a reward, let alone flip a preference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, PreferencePair, Prompt
from rewardlab.evaluate.metrics import pairwise_correct
from rewardlab.evaluate.scorers import Comparer, Scorer, check_scorer, pair_scores


@dataclass(frozen=True)
class ContrastPair:
    """Two lexically similar prompts, each with its right (``chosen``) and a wrong (``rejected``) reply.

    In Contrast Instructions each prompt's wrong reply is the other prompt's right one; the reader
    fills that in when ``rejected_a`` / ``rejected_b`` are left out.
    """

    prompt_a: Prompt
    chosen_a: str
    rejected_a: str
    prompt_b: Prompt
    chosen_b: str
    rejected_b: str
    source: str | None = None


@dataclass
class ContrastConsistencyOutput:
    """``consistency``: the fraction of contrast pairs ranked right on both prompts;
    ``instance_accuracy``: the fraction of the 2n single instances ranked right; ``n`` contrast pairs."""

    consistency: float
    instance_accuracy: float
    accuracy_a: float
    accuracy_b: float
    n: int


def contrast_consistency(
    chosen_a: ArrayLike, rejected_a: ArrayLike, chosen_b: ArrayLike, rejected_b: ArrayLike
) -> ContrastConsistencyOutput:
    """Consistency on contrast pairs (Shen et al. 2023, sec. 3, Contrast Instructions).

    With c = 1[r(x_a, y_a⁺) > r(x_a, y_a⁻)] and d = 1[r(x_b, y_b⁺) > r(x_b, y_b⁻)] per contrast
    pair, consistency = mean(c · d): the model is consistent on a contrast pair only when it ranks
    both instances right. Instance accuracy = mean over the 2n instances = (mean c + mean d) / 2,
    the usual pairwise accuracy, which a surface-reading model can hold near ½ while its
    consistency is near 0. An exact tie in score counts ½ on an instance, as everywhere in
    rewardlab (``metrics.pairwise_correct``), so a tie makes the contrast pair ½ (or ¼) consistent:
    the chance that a coin flip breaking the ties gets both right.
    """
    columns = [np.asarray(x, dtype=float) for x in (chosen_a, rejected_a, chosen_b, rejected_b)]
    if any(c.ndim != 1 for c in columns) or len({c.size for c in columns}) != 1:
        raise ValueError(
            "need one score per contrast pair in each of chosen_a, rejected_a, chosen_b, rejected_b "
            f"(got shapes {[c.shape for c in columns]})"
        )
    if columns[0].size == 0:
        raise ValueError("no contrast pairs to measure")
    a, b = pairwise_correct(columns[0], columns[1]), pairwise_correct(columns[2], columns[3])
    return ContrastConsistencyOutput(
        consistency=float(np.mean(a * b)),
        instance_accuracy=float((a.mean() + b.mean()) / 2),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        n=int(a.size),
    )


CONTRAST_FIELDS = ("prompt_a", "chosen_a", "rejected_a", "prompt_b", "chosen_b", "rejected_b")


def read_contrast_pairs(path: str | Path) -> list[ContrastPair]:
    """Contrast pairs from a JSONL (or JSON, CSV, Parquet) file, one per row.

    Fields: ``prompt_a``, ``chosen_a``, ``prompt_b``, ``chosen_b`` (non-empty text; prompts may be
    lists of ``{role, content}`` messages), and optionally ``rejected_a`` and ``rejected_b``, which
    default to the other prompt's right answer (Contrast Instructions' construction). Every bad
    field of the file is listed at once, with its line.
    """
    pairs, errors = [], []
    for location, row in iter_rows(path):
        values, bad = {}, False
        for name in CONTRAST_FIELDS:
            value = row.get(name)
            if value is None and name.startswith("rejected"):
                continue
            message = _field_problem(name, value)
            if message:
                errors.append(str(DataError(location, message, name)))
                bad = True
            values[name] = tuple(value) if isinstance(value, list) else value
        if bad:
            continue
        values.setdefault("rejected_a", values["chosen_b"])
        values.setdefault("rejected_b", values["chosen_a"])
        if values["chosen_a"] == values["rejected_a"] or values["chosen_b"] == values["rejected_b"]:
            errors.append(f"{location}: a prompt's right and wrong replies are the same text (nothing to rank)")
            continue
        pairs.append(ContrastPair(**values, source=location))
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise ValueError("bad contrast pairs:\n" + "\n".join(errors[:20]) + more)
    return pairs


def _field_problem(name: str, value: object) -> str | None:
    if value is None:
        return "is missing (a contrast pair needs prompt_a, chosen_a, prompt_b and chosen_b)"
    if name.startswith("prompt") and isinstance(value, list):
        ok = all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
        return None if ok and value else "must be text or a non-empty list of {role, content} messages"
    if not isinstance(value, str) or not value.strip():
        return f"must be non-empty text (got {value!r:.60})"
    return None


def evaluate_contrast(scorer: Scorer | Comparer, pairs: Sequence[ContrastPair]) -> ContrastConsistencyOutput:
    """Score both instances of every contrast pair with ``scorer`` (a reward model or any scorer)."""
    instances = [PreferencePair(prompt=p.prompt_a, chosen=p.chosen_a, rejected=p.rejected_a) for p in pairs]
    instances += [PreferencePair(prompt=p.prompt_b, chosen=p.chosen_b, rejected=p.rejected_b) for p in pairs]
    chosen, rejected = pair_scores(scorer, instances)
    n = len(pairs)
    return contrast_consistency(chosen[:n], rejected[:n], chosen[n:], rejected[n:])


@dataclass
class InvarianceOutput:
    """Of ``n`` pairs, how many change their preferred reply under ``rewrite``, and how far scores move."""

    rewrite: str
    n: int
    flips: int
    flip_rate: float
    max_score_change: float
    mean_score_change: float


def preference_flips(
    chosen: ArrayLike,
    rejected: ArrayLike,
    rewritten_chosen: ArrayLike,
    rewritten_rejected: ArrayLike,
    *,
    rewrite: str = "rewrite",
) -> InvarianceOutput:
    """Flips and score changes between original and rewritten texts.

    A pair flips when sign(r_c − r_r) differs from sign(r_c' − r_r'), with 0 as its own sign, so a
    strict preference that becomes a tie counts as a flip too. The score change is |r' − r| over
    every reply (both sides of every pair). A rewrite that means the same thing (whitespace, the
    order or the batch the replies are scored in) should give 0 flips; a batch-invariant scorer
    also gives a change of exactly 0 for order and batch size.
    """
    columns = [np.asarray(x, dtype=float) for x in (chosen, rejected, rewritten_chosen, rewritten_rejected)]
    if any(c.ndim != 1 for c in columns) or len({c.size for c in columns}) != 1:
        raise ValueError(
            f"need one score per pair before and after the rewrite (got shapes {[c.shape for c in columns]})"
        )
    if columns[0].size == 0:
        raise ValueError("no pairs to compare")
    before, after = np.sign(columns[0] - columns[1]), np.sign(columns[2] - columns[3])
    change = np.abs(np.concatenate([columns[2] - columns[0], columns[3] - columns[1]]))
    flips = int((before != after).sum())
    return InvarianceOutput(
        rewrite=rewrite,
        n=int(before.size),
        flips=flips,
        flip_rate=flips / before.size,
        max_score_change=float(change.max()),
        mean_score_change=float(change.mean()),
    )


def add_whitespace(text: str) -> str:
    """A harmless rewrite: every run of spaces doubled and a trailing newline added."""
    return re.sub(r" +", lambda m: m.group(0) * 2, text) + "\n"


def invariance_checks(
    scorer: Scorer,
    pairs: Sequence[PreferencePair],
    *,
    batch_size: int = 1,
    whitespace: Callable[[str], str] = add_whitespace,
) -> dict[str, InvarianceOutput]:
    """Score the pairs once as a whole, then again under three harmless rewrites:

    - ``batch_size``: the replies scored ``batch_size`` at a time instead of all in one call;
    - ``candidate_order``: the pairs in reverse order, each rejected reply before its chosen one;
    - ``whitespace``: both replies rewritten by ``whitespace`` (the text changes, the meaning not).
    """
    check_scorer(scorer)
    if not isinstance(scorer, Scorer):
        raise TypeError(f"{type(scorer).__name__} compares pairs; invariance_checks needs a scorer with score()")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    if not pairs:
        raise ValueError("no pairs to check")
    n = len(pairs)
    prompts = [p.prompt for p in pairs] + [p.prompt_of_rejected for p in pairs]
    replies = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    base = _scores(scorer, prompts, replies)

    chunked = [
        score
        for start in range(0, 2 * n, batch_size)
        for score in _scores(scorer, prompts[start : start + batch_size], replies[start : start + batch_size])
    ]
    order = [i + n for i in reversed(range(n))] + list(reversed(range(n)))  # rejected first, pairs reversed
    reordered = np.empty(2 * n)
    reordered[order] = _scores(scorer, [prompts[i] for i in order], [replies[i] for i in order])
    rewritten = _scores(scorer, prompts, [whitespace(r) for r in replies])

    return {
        name: preference_flips(base[:n], base[n:], np.asarray(other)[:n], np.asarray(other)[n:], rewrite=name)
        for name, other in (("batch_size", chunked), ("candidate_order", reordered), ("whitespace", rewritten))
    }


def _scores(scorer: Scorer, prompts: Sequence[Prompt], replies: Sequence[str]) -> np.ndarray:
    scores = np.asarray(scorer.score(prompts, replies), dtype=float)
    if scores.shape != (len(replies),):
        raise ValueError(f"{type(scorer).__name__}.score returned {scores.shape} scores for {len(replies)} replies")
    return scores
