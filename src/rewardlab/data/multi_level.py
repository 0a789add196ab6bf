"""Multi-level preference data (MAPL): pairs of prompts for one reply, and multi-instruction pairs.

Sun et al. 2025, "Multi-Level Aware Preference Learning: Enhancing RLHF for Complex
Multi-Instruction Tasks" (arXiv 2505.12845). Only the abstract (and a third-party summary) was
available here; no reference code was found, so the constructions below are designed from them:

- **intra-sample** (:func:`intra_sample_pairs`): for each reply y of an original pair, two prompts
  x_w, x_l with a known order given y. x_w is the original prompt plus instructions y satisfies,
  x_l the same instructions with at least one changed so that y violates it (the summary's
  "y conforms to all instructions in x_w but not all in x_l"). The instructions are verifiable,
  generated from y itself (word limits, a word to use or avoid), so no annotator or judge model is
  needed. The objective is the response-conditioned Bradley-Terry likelihood
  −log σ(r(x_w, y) − r(x_l, y)): Bradley-Terry over the two prompts with the reply fixed.
- **inter-sample** (:func:`inter_sample_pairs`): two original pairs (x_a, a_w ≻ a_l) and
  (x_b, b_w ≻ b_l) make one two-instruction prompt "1. x_a 2. x_b", answered by the replies'
  concatenations; a reply that answers more of the requests well is preferred:
  (a_w, b_w) ≻ (a_w, b_l) ≻ (a_l, b_l) (or the mirror chain through (a_l, b_w)). These are
  ordinary pairs with one prompt, trained on by any objective or policy loss.

The paper's objectives are weighted sums of Bradley-Terry (or DPO) terms over the original, intra
and inter pairs; each derived pair carries that weight in ``weight``, so no new objective is
needed. An intra-sample record trains as a :class:`PreferencePair` with a ``rejected_prompt``
(:meth:`PromptPreference.as_pair`; ``runs/augmentation.py`` adds both kinds for
``data.multi_level``). Every derived pair keeps its original's ``group`` (or, lacking one, the key
the split uses for the original: its ``id`` or content digest), so a split keeps it beside its original. Build
them from one split only (the training split): an inter-sample pair also quotes its partner.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rewardlab.data.records import Message, PreferencePair, Prompt
from rewardlab.data.split import content_key

INTRA_SUBSET = "multi_level/intra"
INTER_SUBSET = "multi_level/inter"
ABSENT_WORDS = ("pineapple", "telescope", "harbor", "violin", "glacier", "compass", "lantern", "meadow")
"""Words an instruction can name that a reply is unlikely to contain (one it contains is skipped)."""


@dataclass(frozen=True)
class Instruction:
    """One verifiable instruction: ``kind`` with its argument, rendered as ``text``."""

    kind: str
    arg: int | str

    @property
    def text(self) -> str:
        return TEMPLATES[self.kind].format(arg=self.arg)

    def satisfied_by(self, reply: str) -> bool:
        return CHECKS[self.kind](reply, self.arg)


def _has_word(reply: str, word: str | int) -> bool:
    return re.search(rf"\b{re.escape(str(word))}\b", reply, flags=re.IGNORECASE) is not None


TEMPLATES = {
    "max_words": "Answer in at most {arg} words.",
    "min_words": "Answer in at least {arg} words.",
    "include_word": 'Use the word "{arg}" in your answer.',
    "exclude_word": 'Do not use the word "{arg}".',
}
CHECKS: dict[str, Callable[[str, int | str], bool]] = {
    "max_words": lambda reply, n: len(reply.split()) <= int(n),
    "min_words": lambda reply, n: len(reply.split()) >= int(n),
    "include_word": _has_word,
    "exclude_word": lambda reply, word: not _has_word(reply, word),
}
ARGUMENTS = {"max_words": r"(\d+)", "min_words": r"(\d+)", "include_word": r'([^"]+)', "exclude_word": r'([^"]+)'}
PATTERNS = {k: re.compile(re.escape(t).replace(re.escape("{arg}"), ARGUMENTS[k])) for k, t in TEMPLATES.items()}


def make_instruction(kind: str, reply: str, satisfied: bool, rng: random.Random) -> Instruction | None:
    """An instruction of ``kind`` that ``reply`` satisfies (or violates), or None when none can be made."""
    words = len(reply.split())
    present = sorted({w for w in re.findall(r"[A-Za-z]{4,}", reply) if _has_word(reply, w)})
    absent = [w for w in ABSENT_WORDS if not _has_word(reply, w)]
    if kind == "max_words":
        if satisfied:
            return Instruction(kind, words + rng.randint(0, 10))
        return Instruction(kind, rng.randint(max(1, words // 2), words - 1)) if words >= 2 else None
    if kind == "min_words":
        if satisfied:
            return Instruction(kind, rng.randint(max(1, words // 2), words)) if words >= 1 else None
        return Instruction(kind, words + rng.randint(1, 10))
    if kind in ("include_word", "exclude_word"):
        pool = present if satisfied == (kind == "include_word") else absent
        return Instruction(kind, rng.choice(pool)) if pool else None
    raise ValueError(f"unknown instruction kind {kind!r} (known: {', '.join(TEMPLATES)})")


def instructions_in(prompt: Prompt) -> list[Instruction]:
    """The instructions of :data:`TEMPLATES` written in ``prompt`` (its last user turn for a conversation)."""
    text = _last_user_text(prompt)
    found = []
    for line in text.splitlines():
        for kind, pattern in PATTERNS.items():
            if match := pattern.fullmatch(line.strip()):
                arg = match.group(1)
                found.append(Instruction(kind, int(arg) if kind.endswith("_words") else arg))
    return found


def satisfied_count(prompt: Prompt, reply: str) -> tuple[int, int]:
    """(instructions of ``prompt`` that ``reply`` satisfies, instructions in all): a verifiable reward."""
    instructions = instructions_in(prompt)
    return sum(i.satisfied_by(reply) for i in instructions), len(instructions)


def with_instructions(prompt: Prompt, instructions: Sequence[Instruction]) -> Prompt:
    """``prompt`` with one line per instruction after it (after its last user turn for a conversation)."""
    lines = "\n".join(i.text for i in instructions)
    if isinstance(prompt, str):
        return f"{prompt}\n\n{lines}" if prompt else lines
    messages: list[Message] = [dict(m) for m in prompt]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return (*prompt, {"role": "user", "content": lines})
    messages[users[-1]]["content"] = f"{messages[users[-1]]['content']}\n\n{lines}"
    return tuple(messages)


@dataclass(frozen=True)
class PromptPreference:
    """One reply judged under two prompts: (``prompt``, ``reply``) ≻ (``rejected_prompt``, ``reply``).

    The intra-sample record of MAPL. Trained with Bradley-Terry over r(prompt, reply) and
    r(rejected_prompt, reply); unlike :class:`PreferencePair` the two sides do not share a prompt.
    """

    prompt: Prompt
    rejected_prompt: Prompt
    reply: str
    weight: float = 1.0
    subset: str | None = INTRA_SUBSET
    group: str | None = None
    id: str | None = None
    source: str | None = field(default=None, compare=False)

    def as_pair(self) -> PreferencePair:
        """The training record: chosen = rejected = ``reply``, scored after ``prompt`` and ``rejected_prompt``.

        Any pairwise objective then reads r(x_w, y) − r(x_l, y) where it reads r(x, y⁺) − r(x, y⁻).
        """
        return PreferencePair(
            self.prompt,
            self.reply,
            self.reply,
            weight=self.weight,
            id=self.id,
            subset=self.subset,
            group=self.group,
            source=self.source,
            rejected_prompt=self.rejected_prompt,
        )


def split_key(pair: PreferencePair) -> str:
    """The key :func:`rewardlab.data.split.split_pairs` places ``pair`` by: group, else id, else content."""
    return pair.group if pair.group is not None else pair.id if pair.id is not None else content_key(pair)


def intra_sample_pairs(
    pairs: Sequence[PreferencePair], seed: int = 0, max_instructions: int = 3, weight: float = 1.0
) -> list[PromptPreference]:
    """One :class:`PromptPreference` per reply (chosen, then rejected) of each pair, ties included.

    For reply y, 1 to ``max_instructions`` instruction kinds are drawn; x_w adds instructions of
    those kinds that y satisfies, x_l the same kinds with a non-empty subset of them replaced by
    ones y violates. A reply for which no kind can be both satisfied and violated yields nothing.
    The draws depend on ``seed`` and the pair's content only, not on its place in the list.
    """
    _check_weight(weight)
    if max_instructions < 1:
        raise ValueError(f"max_instructions must be >= 1 (got {max_instructions})")
    out: list[PromptPreference] = []
    for pair in pairs:
        rng = random.Random(f"{seed}:intra:{content_key(pair)}")
        for side, reply in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            made = _prompt_preference(pair, reply, rng, max_instructions)
            if made is None:
                continue
            satisfied, violated = made
            out.append(
                PromptPreference(
                    with_instructions(pair.prompt, satisfied),
                    with_instructions(pair.prompt, violated),
                    reply,
                    weight=weight,
                    group=split_key(pair),
                    id=None if pair.id is None else f"{pair.id}/intra={side}",
                    source=pair.source,
                )
            )
    return out


def _prompt_preference(
    pair: PreferencePair, reply: str, rng: random.Random, max_instructions: int
) -> tuple[list[Instruction], list[Instruction]] | None:
    both_ways = {}
    for kind in TEMPLATES:
        yes, no = make_instruction(kind, reply, True, rng), make_instruction(kind, reply, False, rng)
        if yes is not None and no is not None:
            both_ways[kind] = (yes, no)
    if not both_ways:
        return None
    kinds = rng.sample(sorted(both_ways), rng.randint(1, min(max_instructions, len(both_ways))))
    flipped = set(rng.sample(kinds, rng.randint(1, len(kinds))))
    satisfied = [both_ways[k][0] for k in kinds]
    violated = [both_ways[k][1] if k in flipped else both_ways[k][0] for k in kinds]
    return satisfied, violated


def inter_sample_pairs(pairs: Sequence[PreferencePair], seed: int = 0, weight: float = 1.0) -> list[PreferencePair]:
    """Two two-instruction pairs per non-tied pair, each combined with a partner drawn by ``seed``.

    For pair a and partner b the prompt asks both requests; with the partial reply p drawn from
    (a_w, b_l) and (a_l, b_w), the pairs are (a_w, b_w) ≻ p and p ≻ (a_l, b_l): the reply that
    answers more requests well is chosen. They keep a's ``group`` (or split key), ``annotator`` and
    ``source``; ratings, margins and strengths, which were a's alone, are dropped. Fewer than two
    non-tied pairs give nothing.
    """
    _check_weight(weight)
    usable = [p for p in pairs if not p.tie]
    if len(usable) < 2:
        return []
    rng = random.Random(f"{seed}:inter")
    out: list[PreferencePair] = []
    for index, a in enumerate(usable):
        b = usable[(index + rng.randint(1, len(usable) - 1)) % len(usable)]
        prompt = _combined_prompt(a.prompt, b.prompt)
        full, none = _numbered(a.chosen, b.chosen), _numbered(a.rejected, b.rejected)
        partial = _numbered(a.chosen, b.rejected) if rng.random() < 0.5 else _numbered(a.rejected, b.chosen)
        for j, (chosen, rejected) in enumerate(((full, partial), (partial, none))):
            out.append(
                dataclasses.replace(
                    a,
                    prompt=prompt,
                    chosen=chosen,
                    rejected=rejected,
                    margin=None,
                    strength=None,
                    chosen_rating=None,
                    rejected_rating=None,
                    weight=weight,
                    subset=INTER_SUBSET,
                    group=split_key(a),
                    id=None if a.id is None else f"{a.id}/inter={j}",
                )
            )
    return out


def multi_level_pairs(
    pairs: Sequence[PreferencePair], seed: int = 0, weight: float = 1.0
) -> tuple[list[PreferencePair], list[PromptPreference]]:
    """The original pairs followed, pair by pair, by their inter-sample pairs; and the intra-sample records."""
    return with_inter_sample_pairs(pairs, seed, weight), intra_sample_pairs(pairs, seed, weight=weight)


def with_inter_sample_pairs(
    pairs: Sequence[PreferencePair], seed: int = 0, weight: float = 1.0
) -> list[PreferencePair]:
    """The original pairs, each followed by its inter-sample pairs (:func:`inter_sample_pairs`)."""
    inter = inter_sample_pairs(pairs, seed, weight)
    by_original: dict[int, list[PreferencePair]] = {}
    usable = [i for i, p in enumerate(pairs) if not p.tie]
    for k, derived in enumerate(inter):
        by_original.setdefault(usable[k // 2], []).append(derived)
    return [q for i, p in enumerate(pairs) for q in (p, *by_original.get(i, []))]


def _combined_prompt(first: Prompt, second: Prompt) -> str:
    return f"Answer both requests.\n\n1. {_last_user_text(first)}\n\n2. {_last_user_text(second)}"


def _numbered(first: str, second: str) -> str:
    return f"1. {first}\n\n2. {second}"


def _last_user_text(prompt: Prompt) -> str:
    """A text prompt as it is; a conversation's last user message (earlier turns are not quoted)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def _check_weight(weight: float) -> None:
    if not weight > 0:
        raise ValueError(f"weight must be > 0: it scales the derived pairs' loss (got {weight})")
