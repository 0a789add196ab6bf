"""Anything that scores replies can be evaluated: a small protocol, and scorers built by name.

A **scorer** has ``score(prompts, replies) -> list[float]`` (a reward per reply), or
``compare(prompts, a, b) -> list[float]`` (the log-odds that each ``a`` beats its ``b``), or both.
Pairwise evaluation asks ``compare`` when there is one (it is the scorer's own judgement of the
pair) and gives the pair the antisymmetric scores ±ℓ/2, as ``pairwise.score_pairs`` does for
preference-embedding models; otherwise it scores both replies. Best-of-N and rankings need a
score per reply: a compare-only scorer gets, for reply i among n, the mean log-odds of i against
each other reply, (1/(n−1)) Σ_{j≠i} ℓ(i, j), each unordered pair compared once with
ℓ(j, i) = −ℓ(i, j) (true of the judge, which averages both orders).

Scorers by name (``build_scorer``): ``reward-model`` (any local sequence classifier),
``implicit`` / ``implicit-sum`` / ``implicit-mean`` (a DPO policy's implicit reward),
``judge`` (a generative judge), ``reasoning-judge`` (it writes a rubric or a solution first),
``tool-judge`` (the judge shown tool reports), ``bleu`` / ``rouge-l``
and ``polar`` (against reference answers), ``cdr`` (density ratio of two LMs), ``flr`` (follow-up likelihood),
``r3`` (regularised relevance from an embedding model), ``prm`` (a process reward model's step
probabilities, aggregated by ``--aggregate``), ``utility`` (an LM's logits read as utilities),
``weighted-dimensions`` / ``weighted-dimensions-ref`` (a few interpretable dimensions with fitted
weights) and ``remote`` (an HTTP endpoint in OpenRLHF's protocol).
Each is a registered ``ScorerKind`` carrying its description, its checks and its builder; other
installed packages add kinds through the ``rewardlab.scorers`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rewardlab.data.readers import read_json_file
from rewardlab.data.records import DataError, PreferencePair, Prompt
from rewardlab.precision import Precision, resolve_precision
from rewardlab.registry import Registry
from rewardlab.runs.config import Checked

if TYPE_CHECKING:  # loaded when a reward-model scorer is built, so listing the scorers stays light
    from rewardlab.models.reward_model import RewardModel


@runtime_checkable
class Scorer(Protocol):
    """Rewards for replies to prompts, one number each."""

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]: ...


@runtime_checkable
class Comparer(Protocol):
    """Log-odds that each reply ``a`` is preferred to its ``b``."""

    def compare(self, prompts: Sequence[Prompt], a: Sequence[str], b: Sequence[str]) -> list[float]: ...


def check_scorer(scorer: object) -> None:
    if not isinstance(scorer, Scorer | Comparer):
        raise TypeError(
            f"{type(scorer).__name__} is not a scorer: "
            "it needs a score(prompts, replies) or a compare(prompts, a, b) method"
        )


# -- reward models ---------------------------------------------------------------------------------------


@dataclass
class RewardModelScorer:
    """A ``RewardModel`` (rewardlab's, or any local one-label sequence classifier) as a scorer."""

    model: RewardModel
    precision_request: Precision = "auto"

    @property
    def precision(self) -> str:
        return resolve_precision(self.precision_request, self.model.model.device)

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return self.model.score(prompts, replies, precision=self.precision_request)


@dataclass
class PreferenceModelComparer:
    """A reward model with a preference head (it compares two replies, it scores none alone)."""

    model: RewardModel
    precision_request: Precision = "auto"

    @property
    def precision(self) -> str:
        return resolve_precision(self.precision_request, self.model.model.device)

    def compare(self, prompts: Sequence[Prompt], a: Sequence[str], b: Sequence[str]) -> list[float]:
        a_ids, b_ids = self.model.encode(prompts, a).ids, self.model.encode(prompts, b).ids
        return self.model.preference_logits(a_ids, b_ids, precision=self.precision_request)


def reward_model_scorer(
    model: RewardModel, precision: Precision = "auto"
) -> RewardModelScorer | PreferenceModelComparer:
    if model.info.scores_pairs:
        return PreferenceModelComparer(model, precision)
    return RewardModelScorer(model, precision)


# -- evaluation helpers ----------------------------------------------------------------------------------


def pair_scores(scorer: Scorer | Comparer, pairs: Sequence[PreferencePair]) -> tuple[list[float], list[float]]:
    """Scores of each pair's chosen and rejected reply (±ℓ/2 from a scorer that compares)."""
    check_scorer(scorer)
    prompts = [p.prompt for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    if isinstance(scorer, Comparer):
        if any(p.rejected_prompt is not None for p in pairs):
            raise ValueError(
                "a scorer that compares two replies to one prompt cannot score pairs with a rejected_prompt"
            )
        logits = _checked(scorer.compare(prompts, chosen, rejected), len(pairs), "compare")
        return [x / 2 for x in logits], [-x / 2 for x in logits]
    both_prompts = prompts + [p.prompt_of_rejected for p in pairs]  # each side after its own prompt
    scores = _checked(scorer.score(both_prompts, chosen + rejected), 2 * len(pairs), "score")
    return scores[: len(pairs)], scores[len(pairs) :]


def grouped_scores(
    scorer: Scorer | Comparer, prompts: Sequence[Prompt], groups: Sequence[Sequence[str]]
) -> list[list[float]]:
    """A score for every reply of every group (the replies to one prompt), in one pass over all of them."""
    check_scorer(scorer)
    if isinstance(scorer, Scorer):
        flat_prompts = [p for p, replies in zip(prompts, groups, strict=True) for _ in replies]
        flat = _checked(
            scorer.score(flat_prompts, [r for replies in groups for r in replies]), len(flat_prompts), "score"
        )
        out, start = [], 0
        for replies in groups:
            out.append(flat[start : start + len(replies)])
            start += len(replies)
        return out
    index = [
        (g, i, j) for g, replies in enumerate(groups) for i in range(len(replies)) for j in range(i + 1, len(replies))
    ]
    logits = _checked(
        scorer.compare(
            [prompts[g] for g, _, _ in index], [groups[g][i] for g, i, _ in index], [groups[g][j] for g, _, j in index]
        ),
        len(index),
        "compare",
    )
    totals = [[0.0] * len(replies) for replies in groups]
    for (g, i, j), value in zip(index, logits, strict=True):
        totals[g][i] += value
        totals[g][j] -= value
    return [[t / max(len(row) - 1, 1) for t in row] for row in totals]


def _checked(values: Sequence[float], expected: int, method: str) -> list[float]:
    values = list(values)
    if len(values) != expected:
        raise ValueError(f"the scorer's {method}() returned {len(values)} values for {expected} inputs")
    return [float(v) for v in values]


# -- scorers by name --------------------------------------------------------------------------------------


@dataclass
class ScorerSpec(Checked):
    """What ``build_scorer`` needs; ``model`` is the main model of the kind (the positional MODEL)."""

    kind: str = "reward-model"
    model: str | None = None
    policy: str | None = None
    reference: str | None = None
    beta: float = 0.1
    judge: str | None = None
    principle: str | None = None
    reasoning: bool = False
    reasoning_tokens: int = 64
    reasoning_style: str | None = None
    temperature: float = 0.0
    seed: int = 0
    tools: str | None = None
    strong: str | None = None
    weak: str | None = None
    instruction: str | None = None
    lm: str | None = None
    follow_ups: str | None = None
    url: str | None = None
    aggregate: str | None = None
    precision: Precision = "auto"
    references: Mapping[Hashable, Sequence[str]] | None = field(default=None, repr=False)

    def resolved(self) -> ScorerSpec:
        """The spec with the kind's registered name, its defaults, and MODEL standing in for the
        kind's main model when that option is not given."""
        spec = ScorerSpec(**{**self.__dict__})
        if self.kind not in SCORERS:
            return spec
        kind = SCORERS.get(self.kind)
        spec.kind = kind.name
        if kind.main and self.model and getattr(spec, kind.main) is None:
            setattr(spec, kind.main, self.model)
        for option, value in kind.defaults.items():
            if getattr(spec, option) is None:
                setattr(spec, option, value)
        return spec

    @property
    def needs_references(self) -> bool:
        """Whether the scorer compares replies with reference answers, to be read into ``references``."""
        return self.kind in SCORERS and SCORERS.get(self.kind).needs_references

    def problems(self) -> list[str]:
        """Every problem with the spec, all at once."""
        if self.kind not in SCORERS:
            return [SCORERS.unknown(self.kind)]
        spec = self.resolved()
        kind = SCORERS.get(spec.kind)
        errors = [
            f"scorer {kind.name} needs --{name.replace('_', '-')}" for name in kind.needs if getattr(spec, name) is None
        ]
        errors += kind.check(spec)
        if self.reasoning_tokens < 1:
            errors.append(f"--reasoning-tokens must be at least 1 (got {self.reasoning_tokens})")
        if self.aggregate is not None and "aggregate" not in kind.shown:
            errors.append(f"--aggregate applies to --scorer prm, not {kind.name}")
        return errors

    def describe(self) -> str:
        """The scorer as a report names it: the model folder of a reward model, else the kind with
        the options that identify it."""
        spec = self.resolved()
        kind = SCORERS.get(spec.kind)
        if kind.main == "model":
            return str(spec.model)
        shown = [f"{k}={getattr(spec, k)}" for k in kind.shown if getattr(spec, k) not in (None, False)]
        return f"{kind.name}({', '.join(shown)})"


def no_problems(spec: ScorerSpec) -> list[str]:
    return []


@dataclass(frozen=True)
class ScorerKind:
    """One way of scoring, offered by name: what it is, which options it needs, and how it is built.

    ``build`` receives the resolved spec, already checked. ``main`` is the option the positional
    MODEL stands for (``"model"`` when MODEL itself is the main model, ``None`` when the kind takes
    no model); ``defaults`` fill options left unset; ``shown`` are the options that name the scorer
    in reports; ``check`` lists further problems with a spec of this kind.
    """

    name: str
    description: str
    build: Callable[[ScorerSpec], Scorer | Comparer]
    main: str | None = "model"
    needs: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shown: tuple[str, ...] = ()
    check: Callable[[ScorerSpec], list[str]] = no_problems
    needs_references: bool = False


def scorer_key(name: str) -> str:
    """Scorer names are written with '-' (``rouge-l``); '_' and case are forgiven."""
    return name.strip().lower().replace("_", "-")


SCORERS: Registry[ScorerKind] = Registry("scorer", group="rewardlab.scorers", normalise=scorer_key)
"""The kinds below and those of every ``rewardlab.scorers`` entry-point plugin (a module that calls
``register_scorer``), loaded on the first lookup."""


def register_scorer(kind: ScorerKind) -> None:
    """Offer ``kind`` by its name; a name already taken is refused."""
    SCORERS.add(kind.name, replace(kind, name=scorer_key(kind.name)))


def scorer_names() -> list[str]:
    return SCORERS.names()


def build_scorer(spec: ScorerSpec) -> Scorer | Comparer:
    """The scorer a spec names, its models loaded; raises ``ValueError`` listing every problem."""
    errors = spec.problems()
    if errors:
        raise ValueError("; ".join(errors))
    spec = spec.resolved()
    return SCORERS.get(spec.kind).build(spec)


def _reward_model(spec: ScorerSpec) -> Scorer | Comparer:
    from rewardlab.models.reward_model import RewardModel

    return reward_model_scorer(RewardModel.from_pretrained(spec.model), spec.precision)  # type: ignore[arg-type]


def _implicit(mode: str) -> Callable[[ScorerSpec], Scorer]:
    def build(spec: ScorerSpec) -> Scorer:
        from rewardlab.evaluate.likelihood_scorers import ImplicitRewardScorer
        from rewardlab.models.causal_lm import CausalLM

        reference = CausalLM.from_pretrained(spec.reference, precision=spec.precision) if spec.reference else None
        policy = CausalLM.from_pretrained(spec.policy, precision=spec.precision)  # type: ignore[arg-type]
        return ImplicitRewardScorer(policy, reference, spec.beta, mode)  # type: ignore[arg-type]

    return build


def _positive_beta(spec: ScorerSpec) -> list[str]:
    return [] if spec.beta > 0 else [f"--beta must be positive (got {spec.beta})"]


def _reference_free(spec: ScorerSpec) -> list[str]:
    problems = _positive_beta(spec)
    if spec.reference is not None:
        problems.append(f"scorer {spec.kind} is reference-free: drop --reference (or use --scorer implicit)")
    return problems


def _judge(spec: ScorerSpec) -> Comparer:
    from rewardlab.evaluate.judge import JudgeScorer
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.tools.registry import parse_tools

    return JudgeScorer(
        CausalLM.from_pretrained(spec.judge, precision=spec.precision),  # type: ignore[arg-type]
        principle=read_text_option(spec.principle),
        reasoning=spec.reasoning or spec.kind == "reasoning-judge",
        reasoning_style=spec.reasoning_style or "explain",
        reasoning_tokens=spec.reasoning_tokens,
        temperature=spec.temperature,
        seed=spec.seed,
        tools=parse_tools(spec.tools) if spec.tools else (),
    )


def _tools_given(spec: ScorerSpec) -> list[str]:
    return (
        [] if spec.tools else ["scorer tool-judge needs --tools: calculator, python or lookup=FOLDER, comma-separated"]
    )


def _overlap(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.reference_scorers import ReferenceScorer

    if spec.references is None:
        raise ValueError(f"scorer {spec.kind} needs reference answers (read them with read_references)")
    return ReferenceScorer(spec.kind, spec.references)  # type: ignore[arg-type]


def _polar(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.reference_scorers import PolarScorer
    from rewardlab.models.reward_model import RewardModel

    if spec.references is None:
        raise ValueError("scorer polar needs reference replies (read them with read_references)")
    return PolarScorer(RewardModel.from_pretrained(spec.model), spec.references, spec.precision)  # type: ignore[arg-type]


def _takes_no_model(spec: ScorerSpec) -> list[str]:
    if spec.model is None:
        return []
    return [f"scorer {spec.kind} takes no MODEL (it compares replies with reference answers)"]


def _density_ratio(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.likelihood_scorers import DensityRatioScorer
    from rewardlab.models.causal_lm import CausalLM

    strong = CausalLM.from_pretrained(spec.strong, precision=spec.precision)  # type: ignore[arg-type]
    weak = CausalLM.from_pretrained(spec.weak, precision=spec.precision)  # type: ignore[arg-type]
    return DensityRatioScorer(strong, weak, read_text_option(spec.instruction))


def _follow_up(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.likelihood_scorers import FollowUpScorer
    from rewardlab.models.causal_lm import CausalLM

    positive, negative = read_follow_ups(spec.follow_ups) if spec.follow_ups else (None, None)
    options = {"positive": positive, "negative": negative} if positive else {}
    return FollowUpScorer(CausalLM.from_pretrained(spec.lm, precision=spec.precision), **options)  # type: ignore[arg-type]


def _remote(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.remote import RemoteScorer

    return RemoteScorer(spec.url)  # type: ignore[arg-type]


def _process_reward(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.process_scorer import ProcessRewardScorer
    from rewardlab.models.reward_model import RewardModel

    return ProcessRewardScorer(RewardModel.from_pretrained(spec.model), spec.aggregate, spec.precision)  # type: ignore[arg-type]


def _process_reward_fits(spec: ScorerSpec) -> list[str]:
    """A known aggregate, and MODEL a model ``rewardlab prm train`` saved (read from its config, unloaded)."""
    from rewardlab.models.step_scoring import step_model_problem
    from rewardlab.rewards.step_aggregation import AGGREGATIONS

    problems = []
    if spec.aggregate not in AGGREGATIONS:
        problems.append(f"--aggregate must be one of {', '.join(AGGREGATIONS)} (got {spec.aggregate!r})")
    if spec.model is not None and (problem := step_model_problem(spec.model)):
        problems.append(problem)
    return problems


def _regularized_relevance(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.relevance import load_relevance_scorer

    return load_relevance_scorer(spec.model)  # type: ignore[arg-type]  # defaults to minilm


def _logit_utility(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.utility_duality import LogitUtilityScorer
    from rewardlab.models.causal_lm import CausalLM

    return LogitUtilityScorer(CausalLM.from_pretrained(spec.policy, precision=spec.precision))  # type: ignore[arg-type]


def _dimensions(spec: ScorerSpec) -> Scorer:
    from rewardlab.evaluate.dimensions import load_dimension_scorer

    return load_dimension_scorer(spec.model, spec.references)  # type: ignore[arg-type]


def _dimension_reward_fits(spec: ScorerSpec) -> list[str]:
    from rewardlab.evaluate.dimensions import DimensionReward

    if spec.model is None:
        return []
    try:
        reward = DimensionReward.load(spec.model)
    except DataError as error:
        return [str(error)]
    if reward.needs_references and not SCORERS.get(spec.kind).needs_references:
        return [
            f"{spec.model} reads reference answers: use --scorer weighted-dimensions-ref (--columns reference=FIELD)"
        ]
    return []


for _kind in (
    ScorerKind(
        "reward-model",
        "a local reward model folder (AutoModelForSequenceClassification): MODEL",
        _reward_model,
        needs=("model",),
    ),
    ScorerKind(
        "implicit",
        "a DPO policy's implicit reward β·(log π − log π_ref): --policy, --reference, --beta",
        _implicit("dpo"),
        main="policy",
        needs=("policy", "reference"),
        shown=("policy", "reference", "beta"),
        check=_positive_beta,
    ),
    ScorerKind(
        "implicit-sum",
        "reference-free implicit reward β·log π(y|x): --policy, --beta",
        _implicit("sum"),
        main="policy",
        needs=("policy",),
        shown=("policy", "beta"),
        check=_reference_free,
    ),
    ScorerKind(
        "implicit-mean",
        "reference-free, length-normalised β·log π(y|x)/|y|: --policy, --beta",
        _implicit("mean"),
        main="policy",
        needs=("policy",),
        shown=("policy", "beta"),
        check=_reference_free,
    ),
    ScorerKind(
        "judge",
        "a generative judge, P(A) vs P(B) in both orders: --judge (default smollm2), --principle, --reasoning",
        _judge,
        main="judge",
        defaults={"judge": "smollm2"},
        shown=("judge", "principle", "reasoning"),
    ),
    ScorerKind(
        "reasoning-judge",
        "the generative judge writing first (RM-R1): --reasoning-style rubric (default), solve or explain, --judge",
        _judge,
        main="judge",
        defaults={"judge": "smollm2", "reasoning_style": "rubric"},
        shown=("judge", "reasoning_style", "principle"),
    ),
    ScorerKind(
        "tool-judge",
        "the generative judge shown what tools report on each response: --tools calculator,python,lookup=DIR, --judge",
        _judge,
        main="judge",
        defaults={"judge": "smollm2"},
        shown=("judge", "tools", "principle", "reasoning"),
        check=_tools_given,
    ),
    ScorerKind(
        "bleu",
        "sentence BLEU against the prompt's reference answers (--columns reference=FIELD)",
        _overlap,
        main=None,
        check=_takes_no_model,
        needs_references=True,
    ),
    ScorerKind(
        "rouge-l",
        "ROUGE-L F against the prompt's reference answers (--columns reference=FIELD)",
        _overlap,
        main=None,
        check=_takes_no_model,
        needs_references=True,
    ),
    ScorerKind(
        "polar",
        "a POLAR policy discriminator MODEL: each reply scored after its prompt's reference reply "
        "(--columns reference=FIELD)",
        _polar,
        needs=("model",),
        needs_references=True,
    ),
    ScorerKind(
        "cdr",
        "density ratio log π_strong(y|x) − log π_weak(y|x): --strong, --weak, --instruction",
        _density_ratio,
        main="strong",
        needs=("strong", "weak"),
        shown=("strong", "weak", "instruction"),
    ),
    ScorerKind(
        "flr",
        "follow-up likelihood: positive minus negative user follow-ups: --lm, --follow-ups",
        _follow_up,
        main="lm",
        needs=("lm",),
        shown=("lm", "follow_ups"),
    ),
    ScorerKind(
        "remote",
        "an OpenRLHF-protocol endpoint (e.g. rewardlab serve's /get_reward): --url",
        _remote,
        main="url",
        needs=("url",),
        shown=("url",),
    ),
    ScorerKind(
        "r3",
        "R³ regularised relevance LI·cos(E(x), E(y))·RP, no preferences needed: MODEL an embedding model "
        "(default minilm)",
        _regularized_relevance,
        main=None,  # MODEL is the embedding model, but the report names the kind: r3(model=minilm)
        defaults={"model": "minilm"},
        shown=("model",),
    ),
    ScorerKind(
        "prm",
        "a process reward model (rewardlab prm train): each reply's lines are its steps, scored as a chain: "
        "MODEL, --aggregate min (default), product, last, mean or sum",
        _process_reward,
        main=None,  # MODEL is the PRM, but the report names the aggregate too: prm(model=..., aggregate=min)
        needs=("model",),
        defaults={"aggregate": "min"},
        shown=("model", "aggregate"),
        check=_process_reward_fits,
    ),
    ScorerKind(
        "utility",
        "an LM's logits read as utilities (Huang & Yuan 2023): Σ_t z_t(y_t) over the reply's tokens: --policy",
        _logit_utility,
        main="policy",
        needs=("policy",),
        shown=("policy",),
    ),
    ScorerKind(
        "weighted-dimensions",
        "a dimension reward w·d(x, y) (Nath et al. 2024) saved as JSON by rewardlab.training.dimension_fit: MODEL",
        _dimensions,
        needs=("model",),
        check=_dimension_reward_fits,
    ),
    ScorerKind(
        "weighted-dimensions-ref",
        "a dimension reward that reads reference answers too: MODEL (--columns reference=FIELD)",
        _dimensions,
        needs=("model",),
        check=_dimension_reward_fits,
        needs_references=True,
    ),
):
    register_scorer(_kind)


def read_text_option(value: str | None) -> str | None:
    """An option given as text, or as ``@FILE`` to read it from a file (a long principle or rubric)."""
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (named by {value!r})")
    return path.read_text(encoding="utf-8")


def read_follow_ups(path: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``{"positive": [...], "negative": [...]}`` from a JSON file, each a non-empty list of texts."""
    name = str(path)
    raw = read_json_file(path)
    out = []
    for side in ("positive", "negative"):
        texts = raw.get(side) if isinstance(raw, dict) else None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise DataError(name, "expected a non-empty list of follow-up texts", side)
        out.append(tuple(texts))
    return out[0], out[1]
