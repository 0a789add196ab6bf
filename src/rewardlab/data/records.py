"""The one record type every reader produces and every trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

Message = dict[str, str]
"""A chat message: ``{"role": "user" | "assistant" | "system", "content": text}``."""

Prompt = str | tuple[Message, ...]
"""A prompt is plain text or a conversation (the messages before the compared reply)."""

Rating = float | tuple[float, ...]
"""A reply's rating: one number, or one number per attribute (helpfulness, honesty...)."""


class DataError(ValueError):
    """A problem with one place in a user's data, named so the user can go and fix it.

    ``location`` is ``file:line`` (or ``file[row N]`` for columnar formats) and ``field`` the field
    name as the user wrote it, so the message reads like
    ``data.jsonl:418: field "chosen" is empty (expected non-empty text)``.
    """

    def __init__(self, location: str, message: str, field: str | None = None) -> None:
        self.location = location
        self.field = field
        self.reason = message
        where = f'{location}: field "{field}"' if field else location
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """One human judgement between two replies to the same prompt.

    ``chosen`` was preferred over ``rejected`` unless ``tie`` is set, in which case the two are
    judged equally good and their order carries no meaning. ``margin`` is the annotated preference
    strength (Llama 2's margin term), ``strength`` the probability that ``chosen`` is preferred
    (graded labels: 1 for "better", less for "slightly better", 1/2 for a tie), ``chosen_rating``
    and ``rejected_rating`` each reply's rating (a number, or one number per attribute),
    ``weight`` scales the pair's loss, ``subset`` groups pairs for per-subset accuracy,
    ``annotator`` names who judged, ``group`` ties together the pairs drawn from one k-wise or
    tree record (they are split together), ``context`` is the context the judgement was made in
    (already stated in ``prompt`` by ``data.context.with_context``; kept here to group by it), and
    ``source`` says where the record came from (``file:line``) so later errors can point back to it.
    ``rejected_prompt``, when set, is the prompt of the rejected side (the pair then compares one
    reply, or two, under two prompts).
    """

    prompt: Prompt
    chosen: str
    rejected: str
    margin: float | None = None
    weight: float = 1.0
    tie: bool = False
    strength: float | None = None
    chosen_rating: Rating | None = None
    rejected_rating: Rating | None = None
    id: str | None = None
    subset: str | None = None
    annotator: str | None = None
    group: str | None = None
    context: str | None = None
    source: str | None = field(default=None, compare=False)
    rejected_prompt: Prompt | None = None
    """Set when the two sides were judged under different prompts: ``chosen`` is scored after ``prompt``,
    ``rejected`` after this one (MAPL's intra-sample pairs, ``data.multi_level``: one reply y under a
    prompt x_w whose instructions it satisfies and x_l whose it does not, so chosen = rejected = y)."""
    consistency: float | None = None
    """How far two judges (CREAM: two iterations of a self-rewarding model) agree on this pair's ranking,
    in [0, 1]; the CREAM policy loss (``policy.online_losses``) uses it as the label's probability."""
    judge_probability: float | None = None
    """The generative judge's probability that ``chosen`` beats ``rejected`` (the policy asked, as in
    Self-Rewarding); SCIR's policy loss (``policy.online_losses.scir_loss``) keeps the implicit reward
    consistent with it."""
    annotator_group: str | None = None
    """The group ``annotator`` belongs to (``rewardlab eval --by group``; ``data.user_groups`` writes it):
    a property of the annotator, so one annotator's pairs all name the same group."""

    @property
    def is_conversation(self) -> bool:
        return not isinstance(self.prompt, str)

    @property
    def prompt_of_rejected(self) -> Prompt:
        """The prompt the rejected side is scored after: ``rejected_prompt``, else the shared ``prompt``."""
        return self.prompt if self.rejected_prompt is None else self.rejected_prompt


@dataclass(frozen=True, slots=True)
class Ranking:
    """Several replies to one prompt, ordered best first by a human (a k-wise judgement).

    Objectives over rankings (Plackett-Luce) read it whole; pairwise objectives read its
    ``pairs()``, every pair of replies with the better one as ``chosen``.
    """

    prompt: Prompt
    responses: tuple[str, ...]
    id: str | None = None
    subset: str | None = None
    annotator: str | None = None
    group: str | None = None
    context: str | None = None
    source: str | None = field(default=None, compare=False)

    def pairs(self) -> list[PreferencePair]:
        r = self.responses
        return [
            PreferencePair(
                self.prompt,
                r[i],
                r[j],
                subset=self.subset,
                annotator=self.annotator,
                group=self.group,
                context=self.context,
                source=self.source,
            )
            for i in range(len(r))
            for j in range(i + 1, len(r))
        ]
