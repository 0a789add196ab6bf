"""Rewards against reference answers: BLEU and ROUGE-L (BLEUBERI; maths in ``text_overlap.py``), and a
POLAR policy discriminator that reads the reference (``data/polar.py``).

References belong to prompts, not to replies: every reply to a prompt is scored against that
prompt's references. They are read from the same data file, from the field the column map names
``reference`` (default ``reference``; text or a list of texts). Rows that repeat a prompt add their
references to it, so a prompt may have several.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rewardlab.data.polar import with_reference
from rewardlab.data.prompts import prompt_key
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import MISSING, ColumnMap, describe_value, lookup_field, parse_prompt
from rewardlab.evaluate.text_overlap import rouge_l, sentence_bleu
from rewardlab.precision import Precision, resolve_precision

if TYPE_CHECKING:  # the overlap scorers load no model
    from rewardlab.models.reward_model import RewardModel

OverlapMetric = Literal["bleu", "rouge-l"]


def read_references(path: str | Path, columns: ColumnMap | None = None) -> dict[Hashable, tuple[str, ...]]:
    """Each prompt's reference answers, from the rows of ``path`` that have a reference field.

    The prompt field is read as the pairs' loader reads an explicit prompt; a row without a
    reference is passed over (it may hold pairs only), one with a malformed reference raises.
    """
    columns = columns or ColumnMap()
    found: dict[Hashable, list[str]] = {}
    for location, row in iter_rows(path):
        value = lookup_field(row, columns.reference)
        if value is MISSING or value is None or value == "":
            continue
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise DataError(
                location, f"is {describe_value(value)} (expected a reference text or a list of them)", columns.reference
            )
        prompt_value = lookup_field(row, columns.prompt)
        if prompt_value is MISSING or prompt_value is None:
            raise DataError(location, "is missing (a reference belongs to a prompt)", columns.prompt)
        key = prompt_key(parse_prompt(prompt_value, location, columns.prompt))
        known = found.setdefault(key, [])
        known += [t for t in texts if t not in known]
    if not found:
        raise DataError(
            str(path),
            f'has no row with a reference (field "{columns.reference}"; map it with --columns reference=FIELD)',
        )
    return {key: tuple(texts) for key, texts in found.items()}


@dataclass
class ReferenceScorer:
    """Sentence BLEU or ROUGE-L F of each reply against its prompt's references, in [0, 1]."""

    metric: OverlapMetric
    references: Mapping[Hashable, Sequence[str]]
    precision: str = "exact"

    def __post_init__(self) -> None:
        if self.metric not in ("bleu", "rouge-l"):
            raise ValueError(f"reference metric must be bleu or rouge-l (got {self.metric!r})")

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        rewards = []
        for prompt, reply in zip(prompts, replies, strict=True):
            references = prompt_references(self.references, prompt)
            if self.metric == "bleu":
                rewards.append(sentence_bleu(reply, references).score)
            else:
                rewards.append(rouge_l(reply, references).fmeasure)
        return rewards


def prompt_references(references: Mapping[Hashable, Sequence[str]], prompt: Prompt) -> Sequence[str]:
    """The references of ``prompt``, or a ValueError that shows the prompt."""
    found = references.get(prompt_key(prompt))
    if not found:
        shown = prompt if isinstance(prompt, str) else str(prompt_key(prompt))
        raise ValueError(f"no reference answer for the prompt {shown[:60]!r}")
    return found


@dataclass
class PolarScorer:
    """A POLAR policy discriminator (``data.polar``): the reward model's score of each reply after its
    prompt with a reference reply written in, averaged over the prompt's references."""

    model: RewardModel
    references: Mapping[Hashable, Sequence[str]]
    precision_request: Precision = "auto"

    @property
    def precision(self) -> str:
        return resolve_precision(self.precision_request, self.model.model.device)

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        rows = [
            (with_reference(prompt, reference), reply, index)
            for index, (prompt, reply) in enumerate(zip(prompts, replies, strict=True))
            for reference in prompt_references(self.references, prompt)
        ]
        scores = self.model.score([r[0] for r in rows], [r[1] for r in rows], precision=self.precision_request)
        totals, counts = [0.0] * len(prompts), [0] * len(prompts)
        for (_, _, index), value in zip(rows, scores, strict=True):
            totals[index] += value
            counts[index] += 1
        return [t / c for t, c in zip(totals, counts, strict=True)]
