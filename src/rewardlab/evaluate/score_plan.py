"""What ``rewardlab score`` computes for each row: a ``Scorer`` (the models, loaded) and its
``ScoringPlan`` (which models, and how they score), checked against the models once, before any row is
scored. Another process (each Ray actor of ``--workers``) loads the same plan and scores any rows with
it; a text's reward does not depend on what is scored with it, so every copy gives the same rewards: a
single model (any head, a multi-attribute ``direction``, a pluralistic model's user), a model trained as
an ensemble, or an ensemble of ``members``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rewardlab.data.loading import load_preferences
from rewardlab.data.records import Prompt
from rewardlab.models.ensemble import RewardEnsemble
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.users import UserExamples
from rewardlab.rewards.direction import direction_problem, direction_weights

HEAD_KINDS = {
    "reward": "a single model with one reward per reply",
    "attributes": "a multi-attribute model",
    "ensemble": "an ensemble model",
    "preference": "a preference-embedding model",
}


@dataclass(frozen=True)
class ScoringPlan:
    """Which models score, and how: what ``Scorer.load`` needs to score as ``scorer_for`` checked."""

    model: str
    members: tuple[str, ...] = ()
    """An ensemble's other members, beside ``model``."""
    options: dict[str, Any] = field(default_factory=dict)
    """How an ensemble combines its members: ``aggregation``, ``uncertainty_weight``."""
    direction: tuple[float, ...] | None = None
    user: str | UserExamples | None = None
    precision: str = "auto"
    uncertainty: bool = False
    """Whether each reward comes with an uncertainty (the variance across an ensemble's members)."""

    def resolved(self) -> ScoringPlan:
        """The plan with absolute model paths, for processes that may run elsewhere (Ray actors)."""
        return replace(
            self,
            model=str(Path(self.model).resolve()),
            members=tuple(str(Path(m).resolve()) for m in self.members),
        )


def scorer_for(
    model: str | Path,
    *,
    member: Sequence[str | Path] | None = None,
    aggregation: str | None = None,
    uncertainty_weight: float | None = None,
    direction: str | Sequence[float] | None = None,
    user: str | None = None,
    user_examples: str | Path | None = None,
    precision: str = "auto",
) -> Scorer:
    """The scorer for ``score``'s options, its models loaded here, refusing any option they would ignore or
    cannot take; its ``plan`` is what another process loads to score alike."""
    who = _user(user, user_examples, member)
    weights = direction_weights(direction or None)
    options = {
        k: v for k, v in (("aggregation", aggregation), ("uncertainty_weight", uncertainty_weight)) if v is not None
    }
    if member:
        _check_direction(model, "ensemble", 0, weights)
        members = tuple(str(m) for m in member)
        return Scorer.load(ScoringPlan(str(model), members, options, precision=precision, uncertainty=True))
    reward_model = RewardModel.from_pretrained(model)
    head = reward_model.info.head
    if who is not None and reward_model.users is None:
        flag = "--user" if user is not None else "--user-examples"
        raise ValueError(f"{model}: {flag} is for a pluralistic model; this one gives one reward for everyone")
    _check_direction(model, head, reward_model.model.config.num_labels, weights)
    if head != "ensemble":
        _refuse_unused(model, HEAD_KINDS.get(head, f"a model with a {head} head"), options)
    as_tuple = tuple(weights) if weights is not None else None
    plan = ScoringPlan(str(model), (), options, as_tuple, who, precision, uncertainty=head == "ensemble")
    return Scorer(plan, reward_model)


class Scorer:
    """A plan's models, loaded, scoring any rows (a new user's row fitted once, here)."""

    def __init__(self, plan: ScoringPlan, model: RewardModel | RewardEnsemble) -> None:
        self.plan, self.model = plan, model
        self.user_row = None
        if isinstance(model, RewardModel):
            for key, value in plan.options.items():
                setattr(model.info, key, value)
            self.user_row = model.user_row(plan.user, precision=plan.precision)

    @classmethod
    def load(cls, plan: ScoringPlan) -> Scorer:
        """The plan's models read from their folders (in a Ray actor, say)."""
        if plan.members:
            return cls(plan, RewardEnsemble.from_pretrained([plan.model, *plan.members], **plan.options))
        return cls(plan, RewardModel.from_pretrained(plan.model))

    def __call__(
        self, prompts: Sequence[Prompt], replies: Sequence[str], *, progress: bool = False
    ) -> tuple[list[float], list[float] | None]:
        """Each reply's reward, and its uncertainty when the plan has one (else None)."""
        if isinstance(self.model, RewardEnsemble):
            return self.model.score_with_uncertainty(prompts, replies, precision=self.plan.precision, progress=progress)
        ids = self.model.encode(prompts, replies).ids
        outputs = self.model.outputs_ids(ids, precision=self.plan.precision, progress=progress)
        reward, uncertainty = self.model.reduce(outputs, direction=self.plan.direction, user_row=self.user_row)
        return reward.tolist(), uncertainty.tolist() if uncertainty is not None else None


def _user(
    user: str | None, user_examples: str | Path | None, member: Sequence[Any] | None
) -> str | UserExamples | None:
    """Whom to score for: a known user id, a new user's pairs read from ``user_examples``, or None."""
    if user is not None and user_examples is not None:
        raise ValueError("--user and --user-examples both say whom to score for; give one")
    if member and (user is not None or user_examples is not None):
        raise ValueError("--user and --user-examples are for one pluralistic model, not an ensemble of --member")
    if user_examples is not None:
        return UserExamples.from_pairs(load_preferences(user_examples).pairs, str(user_examples))
    return user


def _check_direction(model: str | Path, head: str, outputs: int, weights: Sequence[float] | None) -> None:
    """Refuse a direction the model would ignore, or one that does not fit its attributes."""
    if problem := direction_problem(head, outputs, weights):
        raise ValueError(f"{model}: --direction {problem}")


def _refuse_unused(model: str | Path, what: str, options: dict[str, Any]) -> None:
    """Refuse an ensemble option the model would ignore: the rewards written would not be what was asked for."""
    for key in options:
        flag = "--" + key.replace("_", "-")
        raise ValueError(
            f"{model}: {flag} combines the members of an ensemble, but this is {what}; "
            "drop it, or score an ensemble (--member MODEL, or a model trained with an ensemble objective)"
        )
