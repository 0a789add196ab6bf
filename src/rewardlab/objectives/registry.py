"""Objectives by name: the one place a new loss is plugged in.

An objective is a pure function of tensors. Its parameters say what it needs: parameters named
after a batch field (``chosen``, ``rejected``, ``margin``, ``tie``...) receive that field, the
others are options the user sets in the config (``objective.args``). The trainer only asks the
registry; it never branches on an objective's name. A new objective is one module in this
package (found without being listed anywhere) or in another installed package that names it in the
``rewardlab.objectives`` entry-point group.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rewardlab.registry import Registry
from rewardlab.registry import normalise_name as normalise_name  # the old home of the name
from rewardlab.rewards.pluralistic import user_model

BATCH_FIELDS = frozenset(
    {
        "chosen",
        "rejected",
        "margin",
        "tie",
        "strength",
        "chosen_rating",
        "rejected_rating",
        "ranked",
        "ranked_mask",
        "chosen_length",
        "rejected_length",
        "user",
        "source",
        "feature_gap",
    }
)
"""Tensors the trainer can hand to an objective (a field the data lacks arrives as ``None``):

- ``chosen``, ``rejected``: the head's outputs for each pair's two replies, shape (B,) for a scalar
  head or (B, D) for a head with D outputs (see ``head_size``);
- ``margin`` (B,): annotated preference strength as a reward gap; ``tie`` (B,) bool;
- ``strength`` (B,): probability that ``chosen`` is preferred, in [0.5, 1] (graded labels);
- ``chosen_rating``, ``rejected_rating``: (B,) scalar ratings or (B, A) multi-attribute ratings;
- ``ranked`` (G, K) or (G, K, D): outputs for the replies to one prompt, best first, and
  ``ranked_mask`` (G, K) bool marking real replies (groups have different sizes);
- ``chosen_length``, ``rejected_length`` (B,): each reply's length in characters, the measure the
  length-bias metrics use (``evaluate/bias.py``), for objectives that disentangle length;
- ``user`` (B, row): the trainable rows of each pair's annotator in the model's user table (the
  trainer gathers them; ``rewards/pluralistic.py`` says what a row means for each user model). An
  objective that takes ``user`` without a default needs pairs with an ``annotator``;
- ``source`` (B,) long: each pair's data source (``runs/sources.py``), an index into the run's source
  names sorted (0 for every pair of a run on one source);
- ``feature_gap`` (B, H): φ(chosen) − φ(rejected), the (detached) vectors the scalar head reads, in
  training only (``None`` in validation): for objectives that weigh the head's gradient (MORE).

An objective asks either for pairs (``chosen``/``rejected``) or for rankings (``ranked``), not both.
"""


@dataclass(frozen=True)
class ObjectiveOutput:
    """Per-pair losses (the caller weights and reduces them) and detached diagnostics."""

    losses: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Objective:
    name: str
    fn: Callable[..., ObjectiveOutput]
    inputs: tuple[str, ...]
    options: Mapping[str, Any]
    summary: str
    required: tuple[str, ...] = ()
    """The inputs without a default: data lacking one of them cannot train this objective."""
    head_size: int | Callable[[Mapping[str, Any]], int] = 1
    """Outputs per reply the model's head must have: a number, or a function of the options."""
    head: str = "reward"
    """What the head's outputs mean, which says how a model trained with this objective scores:
    ``reward`` (one scalar), ``attributes`` (one reward per attribute, combined by a direction),
    ``ensemble`` (one reward per member, aggregated), ``preference`` (preference embeddings:
    the model scores pairs, not single replies) or ``users`` (a pluralistic model: the outputs and a
    per-user row give each user's reward, by the user model ``users``)."""
    ignores_order: bool = False
    """It reads no order from a pair (it regresses ratings), so a pair labelled as a tie trains like any other."""
    kept_outputs: int | None = None
    """How many of the head's first outputs the finished model keeps, the rest being heads used only in
    training (ODIN's length head); None keeps them all."""
    users: str | None = None
    """The user model (``rewards.pluralistic.USER_MODELS``) of a ``users`` head: what a row of the
    model's user table means; None for every other head."""

    @property
    def pairwise(self) -> bool:
        """Whether it reads pairs (``chosen``/``rejected``) rather than rankings."""
        return "chosen" in self.inputs

    @property
    def uses_ties(self) -> bool:
        """Whether it can learn from a pair labelled as a tie: it takes the ``tie`` input, or reads no order
        from a pair. Tied pairs are left out of training for one that does not, which would read them as
        preferences."""
        return "tie" in self.inputs or self.ignores_order

    def outputs(self, options: Mapping[str, Any]) -> int:
        """Head size for these user options (defaults filled in)."""
        if callable(self.head_size):
            return int(self.head_size({**self.options, **options}))
        return self.head_size

    def saved_outputs(self, options: Mapping[str, Any]) -> int:
        """Head size of the finished model: ``kept_outputs`` if set, else ``outputs(options)``."""
        return self.kept_outputs or self.outputs(options)

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        """Every problem with user-given options, so they can all be reported at once."""
        return [
            f"objective {self.name!r} has no option {key!r} (its options: {', '.join(self.options) or 'none'})"
            for key in options
            if key not in self.options
        ]

    def check_values(self, options: Mapping[str, Any]) -> list[str]:
        """Problems with the options' values, found by calling the objective once on a tiny dummy batch.

        An objective checks its own options (``label_smoothing`` in [0, 0.5)...) when it runs; running it
        here moves that check to config time, before any data is read or model built, with no
        per-objective code. Unknown options are ``check_options``'s to report.
        """
        if self.check_options(options):
            return []
        try:
            self(dummy_batch(self, options), **options)
        except (ValueError, TypeError) as error:
            return [f"objective.args: {error} (objective {self.name!r})"]
        except RuntimeError:
            return []  # a plugin that cannot read the dummy batch's shapes: the run itself will say what it needs
        return []

    def __call__(self, batch: Mapping[str, Tensor | None], **options: Any) -> ObjectiveOutput:
        problems = self.check_options(options)
        if problems:
            raise ValueError("; ".join(problems))
        return self.fn(**{name: batch.get(name) for name in self.inputs}, **options)


def dummy_batch(objective: Objective, options: Mapping[str, Any], size: int = 2) -> dict[str, Tensor]:
    """A batch of ``size`` well-formed pairs (or one ranking of ``size``) for every input ``objective`` takes,
    shaped for its head under ``options``: valid data, so whatever the objective refuses is its options.

    No pair is a tie (some objectives refuse ties under some options, which is about the data).
    """
    width = objective.outputs(options)
    per_reply = (size,) if objective.head == "reward" and width == 1 else (size, width)
    rows = user_model(objective.users).row_size(width) if objective.users else width
    values = {
        "user": torch.zeros(size, rows),
        "chosen": torch.ones(per_reply),
        "rejected": torch.zeros(per_reply),
        "margin": torch.ones(size),
        "tie": torch.zeros(size, dtype=torch.bool),
        "strength": torch.full((size,), 0.75),
        "chosen_rating": torch.ones(per_reply),
        "rejected_rating": torch.zeros(per_reply),
        "ranked": torch.zeros((1, *per_reply)),
        "ranked_mask": torch.ones(1, size, dtype=torch.bool),
        "chosen_length": torch.arange(size, dtype=torch.float32) + 2,
        "rejected_length": torch.ones(size),
        "source": torch.arange(size) % 2,
        "feature_gap": torch.eye(size, 3),
    }
    return {name: values[name] for name in objective.inputs}


def head_size_option(option: str, *, per_unit: int = 1, meaning: str = "") -> Callable[[Mapping[str, Any]], int]:
    """A head size read from the positive-integer option ``option``: ``per_unit`` outputs per unit
    (e.g. 2 per 2-d block of a preference embedding); ``meaning`` explains the option in errors."""

    def size(options: Mapping[str, Any]) -> int:
        value = options[option]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            what = f" ({meaning})" if meaning else ""
            raise ValueError(f"{option}{what} must be a positive integer (got {value!r})")
        return per_unit * value

    return size


OBJECTIVES: Registry[Objective] = Registry(
    "objective", packages=("rewardlab.objectives",), group="rewardlab.objectives"
)
"""Every module of this package and every ``rewardlab.objectives`` entry-point plugin, found on the
first lookup: a new objective is one file here (or in another installed package), nothing else."""
HEADS = ("reward", "attributes", "ensemble", "preference", "users")


def register_objective(
    name: str,
    head_size: int | Callable[[Mapping[str, Any]], int] = 1,
    head: str = "reward",
    ignores_order: bool = False,
    kept_outputs: int | None = None,
    users: str | None = None,
) -> Callable[[Callable[..., ObjectiveOutput]], Callable[..., ObjectiveOutput]]:
    """Register ``fn`` under ``name``; a second registration of the same name is refused.

    ``head_size`` is how many outputs per reply the objective needs (e.g.
    ``head_size_option("dim", per_unit=2)`` for preference embeddings); the trainer sizes the
    model's head from it, and ``head`` (see ``Objective.head``) says how the trained model turns
    those outputs into scores. ``ignores_order``: the objective reads no order from a pair (it
    regresses ratings), so tie-labelled pairs are kept for it. ``kept_outputs``: the finished model keeps
    only the head's first outputs (the others are training-only heads). ``users``: the user model of
    a ``users`` head (a pluralistic model; see ``rewards/pluralistic.py``), set exactly when head is "users".
    """

    def decorate(fn: Callable[..., ObjectiveOutput]) -> Callable[..., ObjectiveOutput]:
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)} (got {head!r})")
        if (head == "users") != (users is not None):
            raise ValueError(
                f'users= (a user model) is set exactly when head is "users" (got head={head!r}, users={users!r})'
            )
        if users is not None:
            user_model(users)  # an unknown name raises, naming the known user models
        params = inspect.signature(fn).parameters.values()
        inputs = tuple(p.name for p in params if p.name in BATCH_FIELDS)
        required = tuple(p.name for p in params if p.name in BATCH_FIELDS and p.default is inspect.Parameter.empty)
        options = {p.name: p.default for p in params if p.name not in BATCH_FIELDS}
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        key = OBJECTIVES.normalise(name)
        OBJECTIVES.add(
            key,
            Objective(key, fn, inputs, options, summary, required, head_size, head, ignores_order, kept_outputs, users),
        )
        return fn

    return decorate


def get_objective(name: str) -> Objective:
    return OBJECTIVES.get(name)


def objective_names() -> list[str]:
    return OBJECTIVES.names()
