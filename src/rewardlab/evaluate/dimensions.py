"""A reward made of a few interpretable, domain-specific dimensions: r(x, y) = w · (d(x, y) − μ) / σ.

"Leveraging Domain Knowledge for Efficient Reward Modelling in RLHF: A Case-Study in E-Commerce
Opinion Summarization" (Nath et al. 2024) replaces a reward model learned from tens of thousands of
preference labels with one built from what the domain already knows a good output needs, so that the
labels only have to weigh a handful of dimensions (≈ 940 labels in the paper). Here the dimensions
are pure functions of the prompt (the source to be summarised or answered from), the reply and,
for some, the prompt's reference answers; the weights w are fitted by Bradley-Terry on k labelled
pairs (``training.dimension_fit``) on dimensions standardised by the training replies' mean μ and
standard deviation σ, so that one L2 prior suits every dimension.

Dimensions (``DIMENSIONS``), d in brackets:

- ``length`` log(1 + n), n the reply's words (``relevance.word_tokens``): verbosity, on a log scale;
- ``repetition`` distinct word trigrams / trigrams (R³'s RP, 1 for a reply that never repeats);
- ``refusal`` 1 when the reply refuses or deflects (``data.refusals``), else 0;
- ``source_support`` the share of the reply's word tokens (ROUGE's lower-cased a-z0-9 tokens) that
  occur in the prompt: how much of what is said is grounded in the source (faithfulness);
- ``relevance`` cos(E(x), E(y)) of an embedding model (R³'s Rel, ``relevance.RelevanceScorer``);
- ``reference_recall`` / ``reference_precision`` ROUGE-L recall / precision against the prompt's
  reference answers (coverage of what should be said / how much of the reply is in it).

The saved reward is one JSON file (names, weights, μ, σ, the encoder): nothing in it executes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.data.readers import read_json_file
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.refusals import refuses
from rewardlab.evaluate.reference_scorers import prompt_references
from rewardlab.evaluate.relevance import repetition_penalty, word_tokens
from rewardlab.evaluate.text_overlap import rouge_l, rouge_tokens

FORMAT = "rewardlab-dimension-reward"
VERSION = 1


def length_dimension(reply: str) -> float:
    """log(1 + words): the log keeps a 400-word reply from weighing 100× a 4-word one."""
    return math.log1p(len(word_tokens(reply)))


def repetition_dimension(reply: str) -> float:
    """Distinct word trigrams / trigrams (1 below three words)."""
    return repetition_penalty(word_tokens(reply))


def refusal_dimension(reply: str) -> float:
    return 1.0 if refuses(reply) else 0.0


def source_support(source: str, reply: str) -> float:
    """Share of the reply's tokens (with repeats) found among the source's tokens; 0 for an empty reply."""
    tokens = rouge_tokens(reply)
    if not tokens:
        return 0.0
    known = set(rouge_tokens(source))
    return sum(t in known for t in tokens) / len(tokens)


@dataclass(frozen=True)
class Dimension:
    """One dimension: what it measures, and whether it needs an embedding model or reference answers."""

    name: str
    description: str
    needs_encoder: bool = False
    needs_references: bool = False


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("length", "log(1 + words of the reply)"),
        Dimension("repetition", "distinct word trigrams / trigrams"),
        Dimension("refusal", "1 when the reply refuses or deflects"),
        Dimension("source_support", "share of the reply's tokens found in the prompt (its source)"),
        Dimension("relevance", "cos(E(prompt), E(reply)) of an embedding model", needs_encoder=True),
        Dimension("reference_recall", "ROUGE-L recall against the reference answers", needs_references=True),
        Dimension("reference_precision", "ROUGE-L precision against the reference answers", needs_references=True),
    )
}
REFERENCE_FREE = tuple(name for name, d in DIMENSIONS.items() if not d.needs_references)


def check_dimensions(names: Sequence[str]) -> list[str]:
    """The dimension names as given, or a ValueError listing the unknown ones and what is known."""
    unknown = [n for n in names if n not in DIMENSIONS]
    if unknown or not names or len(set(names)) != len(names):
        problem = f"unknown dimensions {unknown}" if unknown else "dimensions must be non-empty and distinct"
        raise ValueError(f"{problem}; known: {', '.join(DIMENSIONS)}")
    return list(names)


Relevance = Callable[[Sequence[Prompt], Sequence[str]], list[float]]
"""cos(E(x), E(y)) per prompt and reply (``RelevanceScorer.relevance``)."""


def dimension_values(
    names: Sequence[str],
    prompts: Sequence[Prompt],
    replies: Sequence[str],
    *,
    references: Mapping[Hashable, Sequence[str]] | None = None,
    relevance: Relevance | None = None,
) -> list[list[float]]:
    """d(x, y) per reply: one row of ``names``' values per (prompt, reply)."""
    names = check_dimensions(names)
    if len(prompts) != len(replies):
        raise ValueError(f"got {len(prompts)} prompts for {len(replies)} replies")
    columns: dict[str, list[float]] = {}
    if "relevance" in names:
        if relevance is None:
            raise ValueError("the relevance dimension needs an embedding model")
        columns["relevance"] = [float(v) for v in relevance(prompts, replies)]
    for name in names:
        if name == "relevance":
            continue
        if DIMENSIONS[name].needs_references and references is None:
            raise ValueError(f"the {name} dimension needs reference answers (--columns reference=FIELD)")
        columns[name] = [_value(name, p, r, references) for p, r in zip(prompts, replies, strict=True)]
    return [[columns[n][i] for n in names] for i in range(len(replies))]


def _value(name: str, prompt: Prompt, reply: str, references: Mapping[Hashable, Sequence[str]] | None) -> float:
    if name == "length":
        return length_dimension(reply)
    if name == "repetition":
        return repetition_dimension(reply)
    if name == "refusal":
        return refusal_dimension(reply)
    if name == "source_support":
        return source_support(_prompt_text(prompt), reply)
    overlap = rouge_l(reply, prompt_references(references or {}, prompt))
    return overlap.recall if name == "reference_recall" else overlap.precision


def _prompt_text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


@dataclass(frozen=True)
class DimensionReward:
    """r(x, y) = Σ_j w_j (d_j(x, y) − μ_j) / σ_j over ``dimensions``."""

    dimensions: tuple[str, ...]
    weights: tuple[float, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    encoder: str = "minilm"

    def __post_init__(self) -> None:
        check_dimensions(self.dimensions)
        n = len(self.dimensions)
        if not len(self.weights) == len(self.center) == len(self.scale) == n:
            raise ValueError(f"a dimension reward needs {n} weights, centres and scales, one per dimension")
        if not all(s > 0 and math.isfinite(s) for s in self.scale):
            raise ValueError(f"scales must be positive and finite (got {list(self.scale)})")

    @property
    def needs_references(self) -> bool:
        return any(DIMENSIONS[d].needs_references for d in self.dimensions)

    @property
    def needs_encoder(self) -> bool:
        return any(DIMENSIONS[d].needs_encoder for d in self.dimensions)

    def reward(self, values: Sequence[float]) -> float:
        return sum(w * (v - c) / s for w, v, c, s in zip(self.weights, values, self.center, self.scale, strict=True))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_text_atomic(path, json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DimensionReward:
        """A saved reward, or a ``DataError`` naming the file and the field that is wrong."""
        name = str(path)
        raw = read_json_file(path)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DataError(name, f'is not a dimension reward (expected "format": "{FORMAT}")', "format")
        fields: dict[str, object] = {}
        for key in ("dimensions", "weights", "center", "scale"):
            value = raw.get(key)
            numbers = key != "dimensions"
            kind = (int, float) if numbers else str
            if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
                raise DataError(name, f"is {value!r} (expected a list of {'numbers' if numbers else 'names'})", key)
            fields[key] = tuple(float(v) for v in value) if numbers else tuple(value)
        encoder = raw.get("encoder", "minilm")
        if not isinstance(encoder, str):
            raise DataError(name, f"is {encoder!r} (expected an encoder name)", "encoder")
        try:
            return cls(encoder=encoder, **fields)  # type: ignore[arg-type]
        except ValueError as error:
            raise DataError(name, str(error), "dimensions") from error


@dataclass
class DimensionScorer:
    """A ``DimensionReward`` as a scorer: the dimensions of each reply, weighted."""

    reward: DimensionReward
    references: Mapping[Hashable, Sequence[str]] | None = None
    relevance: Relevance | None = None
    precision: str = "fp32"

    def values(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[list[float]]:
        return dimension_values(
            self.reward.dimensions, prompts, replies, references=self.references, relevance=self.relevance
        )

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [self.reward.reward(row) for row in self.values(prompts, replies)]


def load_dimension_scorer(
    path: str | Path, references: Mapping[Hashable, Sequence[str]] | None = None
) -> DimensionScorer:
    """The scorer of a saved reward, with its embedding model loaded when a dimension needs one."""
    reward = DimensionReward.load(path)
    if reward.needs_references and references is None:
        raise ValueError(f"{path}: this reward reads reference answers: use --scorer weighted-dimensions-ref")
    relevance = None
    if reward.needs_encoder:
        from rewardlab.evaluate.relevance import load_relevance_scorer

        relevance = load_relevance_scorer(reward.encoder).relevance
    return DimensionScorer(reward, references, relevance)
