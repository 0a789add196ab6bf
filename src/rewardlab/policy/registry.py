"""Policy preference losses by name: the one place a new DPO-family loss is plugged in.

A policy loss is a pure function of log-probabilities. As for reward objectives
(:mod:`rewardlab.objectives.registry`), its parameters say what it needs: parameters named after a
batch field (``chosen_logps``, ``reference_chosen_logps``, ``chosen_lengths``...) receive that
field, the others are options the user sets. The trainer asks the registered loss what it needs
(``needs_reference``, ``token_level``, ``needs_token_rewards``) instead of branching on its name.
A new loss is a function in :mod:`rewardlab.policy.losses`, or in another installed package that
names its module in the ``rewardlab.policy_losses`` entry-point group.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from rewardlab.registry import Registry

SEQUENCE_FIELDS = frozenset(
    {
        "chosen_logps",
        "rejected_logps",
        "reference_chosen_logps",
        "reference_rejected_logps",
        "chosen_lengths",
        "rejected_lengths",
        "old_chosen_logps",
        "old_rejected_logps",
        "strengths",
        "consistencies",
        "chosen_scores",
        "rejected_scores",
        "judge_probabilities",
        "groups",
    }
)
"""Per-pair tensors of shape (B,): summed log-probabilities of each reply given its prompt under
the policy (``*_logps``) and the frozen reference (``reference_*_logps``), and reply lengths in
tokens (float). For online rules (:mod:`rewardlab.policy.online_losses`): the policy's log-probs
when the update started (``old_*_logps``), and from each ``PreferencePair`` its ``strength``
(``strengths``, 1 if unset), ``consistency`` (``consistencies``, 1 if unset) and ratings as the
judge's rewards (``chosen_scores``, ``rejected_scores``, NaN if unset), and its ``judge_probability``
(``judge_probabilities``, NaN if unset: the generative judge's P(chosen ≻ rejected), SCIR). For
losses over groups of annotators (:mod:`rewardlab.policy.group_losses`): ``groups``, long, the index
of each pair's group, its ``annotator_group``, else its ``annotator`` (the trainer refuses pairs with
neither)."""

TOKEN_FIELDS = frozenset(
    {
        "chosen_token_logps",
        "rejected_token_logps",
        "reference_chosen_token_logps",
        "reference_rejected_token_logps",
        "chosen_token_mask",
        "rejected_token_mask",
        "chosen_token_rewards",
        "rejected_token_rewards",
    }
)
"""Per-token tensors of shape (B, T), right-padded: log-probabilities of each reply token, a bool
mask of real tokens, and token-level guidance rewards (TGDPO). Padded entries may hold anything;
losses read them only through the mask."""

BATCH_FIELDS = SEQUENCE_FIELDS | TOKEN_FIELDS


@dataclass(frozen=True)
class PolicyLossOutput:
    """Per-pair losses (the caller weights and reduces them) and the implicit rewards they compare.

    ``chosen_rewards`` and ``rejected_rewards`` are detached: for reference-based losses the
    implicit reward β·(log π(y|x) − log π_ref(y|x)) (Rafailov et al. 2023, eq. 5), for
    reference-free ones the reward the loss itself compares. ``extras`` holds further detached
    per-pair terms (the NLL of RPO, for example).
    """

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Tensor]:
        """Per-pair diagnostics: both rewards, their margin, and whether the pair is ranked right."""
        margin = self.chosen_rewards - self.rejected_rewards
        return {
            "chosen_reward": self.chosen_rewards,
            "rejected_reward": self.rejected_rewards,
            "margin": margin,
            "accuracy": (margin > 0).float(),
            **self.extras,
        }


@dataclass(frozen=True)
class PolicyLoss:
    name: str
    fn: Callable[..., PolicyLossOutput]
    inputs: tuple[str, ...]
    required: tuple[str, ...]
    options: Mapping[str, Any]
    summary: str
    aliases: tuple[str, ...] = ()
    couples_pairs: bool = False
    """Whether a pair's loss depends on the other pairs of its batch (so a batch cannot be split across
    processes, ``policy/data_parallel.py``)."""

    @property
    def needs_reference(self) -> bool:
        """Whether reference-model log-probabilities must be computed (or read from the cache)."""
        return any(name.startswith("reference_") for name in self.required)

    @property
    def token_level(self) -> bool:
        """Whether the loss reads per-token log-probabilities rather than per-sequence sums."""
        return any(name in TOKEN_FIELDS for name in self.required)

    @property
    def needs_token_rewards(self) -> bool:
        """Whether token-level guidance rewards (from a guide model) must be supplied."""
        return any(name.endswith("_token_rewards") for name in self.required)

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        """Every unknown option, so they can all be reported at once."""
        return [
            f"policy loss {self.name!r} has no option {key!r} (its options: {', '.join(self.options) or 'none'})"
            for key in options
            if key not in self.options
        ]

    def __call__(self, batch: Mapping[str, Tensor | None], **options: Any) -> PolicyLossOutput:
        problems = self.check_options(options)
        missing = [name for name in self.required if batch.get(name) is None]
        if missing:
            problems.append(f"policy loss {self.name!r} needs the batch fields {', '.join(missing)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self.fn(**{name: batch.get(name) for name in self.inputs}, **options)


POLICY_LOSSES: Registry[PolicyLoss] = Registry(
    "policy loss",
    plural="policy losses",
    packages=("rewardlab.policy.losses", "rewardlab.policy.online_losses", "rewardlab.policy.group_losses"),
    group="rewardlab.policy_losses",
)
"""The losses of :mod:`rewardlab.policy.losses`, :mod:`rewardlab.policy.online_losses` and
:mod:`rewardlab.policy.group_losses`, and
every ``rewardlab.policy_losses`` entry-point plugin, found on the first lookup."""


def register_policy_loss(
    name: str, aliases: tuple[str, ...] = (), couples_pairs: bool = False
) -> Callable[[Callable[..., PolicyLossOutput]], Callable[..., PolicyLossOutput]]:
    """Register ``fn`` under ``name`` (and ``aliases``); a name already taken is refused. ``couples_pairs``:
    a pair's loss depends on the other pairs of the batch (``PolicyLoss.couples_pairs``)."""

    def decorate(fn: Callable[..., PolicyLossOutput]) -> Callable[..., PolicyLossOutput]:
        key = POLICY_LOSSES.normalise(name)
        params = list(inspect.signature(fn).parameters.values())
        inputs = tuple(p.name for p in params if p.name in BATCH_FIELDS)
        required = tuple(p.name for p in params if p.name in BATCH_FIELDS and p.default is inspect.Parameter.empty)
        options = {p.name: p.default for p in params if p.name not in BATCH_FIELDS}
        no_default = [n for n, d in options.items() if d is inspect.Parameter.empty]
        if no_default:
            raise ValueError(f"policy loss {key!r}: option(s) {', '.join(no_default)} need a default value")
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        alias_keys = tuple(POLICY_LOSSES.normalise(a) for a in aliases)
        loss = PolicyLoss(key, fn, inputs, required, options, summary, alias_keys, couples_pairs)
        POLICY_LOSSES.add(key, loss, alias_keys)
        return fn

    return decorate


def get_policy_loss(name: str) -> PolicyLoss:
    return POLICY_LOSSES.get(name)


def policy_loss_names() -> list[str]:
    return POLICY_LOSSES.names()
