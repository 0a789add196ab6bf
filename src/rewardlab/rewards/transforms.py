"""Reward transforms: what to do with a reward model's output before a policy optimises it.

A reward model trained with Bradley-Terry is only defined up to a shift, its scale is arbitrary,
and past some point more reward stops meaning a better reply. Each function here is pure (tensors
in, tensors out, no model, no I/O) and carries the equation it computes and the paper it comes
from. ``apply_transform`` applies one by name, which is how the scoring server offers them; other
installed packages add transforms through the ``rewardlab.transforms`` entry-point group.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import logsigmoid

from rewardlab.registry import Registry, UnknownNameError

# -- scale and range -------------------------------------------------------------------------------


def normalize_rewards(rewards: Tensor, mean: float, std: float) -> Tensor:
    """(r − μ) / σ with μ, σ the reward mean and std on the reward model's training data.

    The statistics are fixed, saved with the model (``info.reward_mean``/``reward_std``), so a
    reply gets the same normalised reward in every batch, unlike ``whiten_rewards``. This is the
    reward normalisation of OpenRLHF's ``--normalize_reward`` and of Zheng et al. 2023
    (Secrets of RLHF in Large Language Models Part I), there with statistics from a sample.
    """
    if not std > 0 or not math.isfinite(std):
        raise ValueError(f"std must be a positive finite number (got {std})")
    return (rewards - mean) / std


def clip_rewards(rewards: Tensor, low: float = -math.inf, high: float = math.inf) -> Tensor:
    """min(max(r, low), high): keeps rare extreme rewards from dominating a policy-gradient step."""
    if low > high:
        raise ValueError(f"low must not exceed high (got low={low}, high={high})")
    return rewards.clamp(min=low, max=high)


def whiten_rewards(rewards: Tensor, eps: float = 1e-8) -> Tensor:
    """(r − mean_B(r)) / (std_B(r) + ε) over the batch B (population std).

    The batch-level normalisation used in PPO for RLHF (Ziegler et al. 2019; Ouyang et al. 2022):
    the result is invariant to any shift and positive scale of the reward model, which a
    Bradley-Terry model does not pin down. It depends on the rest of the batch, so a reply's value
    changes with its company; with one element the result is 0.
    """
    centered = rewards - rewards.mean()
    return centered / (centered.pow(2).mean().sqrt() + eps)


# -- transforms against a reference reward -------------------------------------------------------------


def lsc_rewards(rewards: Tensor, reference: Tensor) -> Tensor:
    """log σ(r − r_ref): the log-sigmoid-centred reward of Wang et al. 2024 (Transforming and
    Combining Rewards for Aligning Large Language Models).

    r_ref is the reward of a reference reply to the same prompt (e.g. the base policy's). Under
    Bradley-Terry, σ(r − r_ref) is the probability that the reply beats the reference, i.e. is
    "good"; the log makes the gain largest for poor replies and vanish for already-good ones.
    Summing it over properties gives log Π σ(r_i − r_i,ref), the log-probability of being good on
    every property (a logical AND, see ``combine_lsc``).
    """
    return logsigmoid(rewards - reference)


def combine_lsc(rewards: Tensor, references: Tensor) -> Tensor:
    """Σ_i log σ(r_i − r_i,ref) over properties i (last dimension): the combination of Wang et al. 2024.

    ``rewards`` and ``references`` are ``(n, k)`` for n replies and k reward models. The sum is
    at most min_i log σ(r_i − r_i,ref): one property judged bad caps the total however excellent
    the others are, which a plain sum Σ r_i does not do.
    """
    return lsc_rewards(rewards, references).sum(dim=-1)


def par_rewards(rewards: Tensor, references: Tensor) -> Tensor:
    """(1/M) Σ_m σ(r − r_ref,m): Preference As Reward (Fu et al. 2025, Reward Shaping to Mitigate
    Reward Hacking in RLHF).

    ``references`` is ``(n,)`` (one reference reward per reply, M = 1) or ``(n, M)``. The result
    lies in (0, 1), grows fastest near the reference and saturates above it, which are the
    paper's three design principles: bounded, fast initial growth then slow convergence, and a
    function of the centred reward. The paper finds one reference reward enough.
    """
    if references.dim() == rewards.dim():
        references = references.unsqueeze(-1)
    return torch.sigmoid(rewards.unsqueeze(-1) - references).mean(dim=-1)


# -- process (step) rewards -----------------------------------------------------------------------------


def step_clip_rewards(step_rewards: Tensor, eta: float) -> Tensor:
    """min(r_t − η, 0) per step: the Clip mechanism of Gao et al. 2024 (On Designing Effective RL
    Reward at Training Time for LLM Reasoning).

    Every step reward is at most 0, so a trajectory's return Σ_t is at most 0 whatever its
    length: repeating correct-looking steps can no longer earn reward, only lose less of it.
    """
    return (step_rewards - eta).clamp(max=0.0)


def step_delta_rewards(step_rewards: Tensor) -> Tensor:
    """r_t − r_{t+1} for t < T, and 0 for the last step T: the Delta mechanism of Gao et al. 2024.

    ``step_rewards`` holds the process rewards of one trajectory's steps along the last
    dimension. The return from step t telescopes: Σ_{k≥t} (r_k − r_{k+1}) = r_t − r_T, so every
    return lies within the range of single-step rewards, however many steps follow (the paper
    adds the success reward at the end, where the last process reward is dropped).
    """
    delta = torch.zeros_like(step_rewards)
    delta[..., :-1] = step_rewards[..., :-1] - step_rewards[..., 1:]
    return delta


def returns_to_go(step_rewards: Tensor) -> Tensor:
    """Σ_{k≥t} r_k for each step t (undiscounted), along the last dimension."""
    return step_rewards.flip(-1).cumsum(-1).flip(-1)


# -- composing several reward models ------------------------------------------------------------------


def capped_sum(components: Tensor, thresholds: Tensor, weights: Tensor | None = None) -> Tensor:
    """Σ_i w_i min(r_i, θ_i): each component reward stops counting at its threshold θ_i.

    Moskovitz et al. 2023 (Confronting Reward Model Overoptimization with Constrained RLHF) show
    that each component reward model has a "proxy point" past which more of its reward means worse
    human ratings. Capping each component at θ_i (its proxy point) removes the incentive to push
    past it; this is the static form of their constraint. ``components`` is ``(n, k)``.
    """
    capped = torch.minimum(components, thresholds)
    return capped.sum(-1) if weights is None else (capped * weights).sum(-1)


def lagrangian_reward(components: Tensor, thresholds: Tensor, multipliers: Tensor) -> Tensor:
    """Σ_i r_i − Σ_i λ_i (r_i − θ_i), the per-sample reward of the Lagrangian of
    max_π Σ_i E[r_i]  subject to  E[r_i] ≤ θ_i, with λ_i ≥ 0.

    Our reading of Moskovitz et al. 2023: the component weights become Lagrange multipliers,
    learnt alongside the policy (``update_multipliers``), so a component whose mean reward passes
    its threshold is weighted down (1 − λ_i) until it returns below. The paper studies several
    constraint forms (inequalities and equalities, some components as the objective); this is the
    inequality form on every component.
    """
    return (components - multipliers * (components - thresholds)).sum(-1)


def update_multipliers(multipliers: Tensor, components: Tensor, thresholds: Tensor, lr: float) -> Tensor:
    """λ_i ← max(0, λ_i + lr · (mean_n r_i − θ_i)): projected gradient ascent on the dual.

    A multiplier grows while its component's mean reward exceeds its threshold and decays to 0
    when the constraint holds with room to spare.
    """
    return (multipliers + lr * (components.mean(0) - thresholds)).clamp(min=0.0)


# -- length ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthFit:
    """r ≈ intercept + slope·length, fitted by least squares over scored replies."""

    intercept: float
    slope: float


def fit_length_regression(rewards: Tensor, lengths: Tensor) -> LengthFit:
    """Ordinary least squares of reward on length: b = cov(ℓ, r)/var(ℓ), a = mean(r) − b·mean(ℓ).

    Fitted on the replies of a split the model did not train on (the validation split), b is how much
    reward the model gives per unit of length (characters, as the length-bias metrics count them):
    the length dependence that ``remove_length`` takes out (Singhal et al. 2023, "A Long Way to Go:
    Investigating Length Correlations in RLHF", show reward models lean on length). Needs two or more
    replies of different lengths.
    """
    rewards, lengths = rewards.double().flatten(), lengths.double().flatten()
    if rewards.shape != lengths.shape:
        raise ValueError(f"need one length per reward (got {len(rewards)} rewards, {len(lengths)} lengths)")
    centred = lengths - lengths.mean()
    spread = centred.pow(2).sum()
    if len(lengths) < 2 or spread == 0:
        raise ValueError("fitting reward on length needs at least two replies of different lengths")
    slope = (centred * (rewards - rewards.mean())).sum() / spread
    return LengthFit(float(rewards.mean() - slope * lengths.mean()), float(slope))


def remove_length(rewards: Tensor, lengths: Tensor, slope: float) -> Tensor:
    """r − b·ℓ: the reward with the length trend of ``fit_length_regression`` taken out.

    On the replies it was fitted on, the result is uncorrelated with length (its least-squares slope
    on length is 0), so ranking two replies by it no longer favours the longer one by b per
    character; the intercept is kept out of it, as any shift of a Bradley-Terry reward is.
    """
    return rewards - slope * lengths.to(rewards.dtype)


# -- transforms by name ---------------------------------------------------------------------------------


class TransformError(ValueError):
    """A transform asked for by name cannot be applied as asked; ``field`` names the culprit."""

    def __init__(self, message: str, field: str = "transform") -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RewardStats:
    """The saved statistics of a reward model that transforms may use."""

    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class NamedTransform:
    """A transform that can be applied by name to the rewards of one request.

    ``reference`` says whether it needs reference rewards: ``"one"`` (one per reply), ``"many"``
    (one or more per reply) or ``None``; ``uses_stats`` whether it reads the model's saved mean and
    std; ``steps`` whether the rewards are read as the successive steps of one trajectory.
    """

    name: str
    apply: Callable[..., Tensor]
    summary: str
    reference: str | None = None
    uses_stats: bool = False
    steps: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The options a caller may give, with their defaults (``None``: required)."""
        skip = {"rewards", "reference", "references", "step_rewards", "stats"}
        params = inspect.signature(self.apply).parameters.values()
        return {
            p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params if p.name not in skip
        }


def _normalize(rewards: Tensor, stats: RewardStats, mean: float | None = None, std: float | None = None) -> Tensor:
    mean = stats.mean if mean is None else mean
    std = stats.std if std is None else std
    if mean is None or std is None:
        raise TransformError(
            "'normalize' needs the reward mean and std, and this model has none saved "
            '(reward_mean/reward_std in its config); give them as args: {"mean": ..., "std": ...}',
            field="transform.args",
        )
    return normalize_rewards(rewards, mean, std)


def _lsc(rewards: Tensor, reference: Tensor) -> Tensor:
    return lsc_rewards(rewards, reference)


def _par(rewards: Tensor, references: Tensor) -> Tensor:
    return par_rewards(rewards, references)


TRANSFORMS: Registry[NamedTransform] = Registry("transform", group="rewardlab.transforms")
"""The transforms below, and those of every ``rewardlab.transforms`` entry-point plugin (a module
that calls ``register_transform``), loaded on the first lookup."""


def register_transform(transform: NamedTransform) -> None:
    """Offer ``transform`` by its name; a name already taken is refused."""
    TRANSFORMS.add(transform.name, replace(transform, name=TRANSFORMS.normalise(transform.name)))


for _transform in (
    NamedTransform("normalize", _normalize, "(r − μ)/σ with the model's saved statistics", uses_stats=True),
    NamedTransform("clip", clip_rewards, "min(max(r, low), high)"),
    NamedTransform("whiten", whiten_rewards, "(r − mean)/std over the request's rewards"),
    NamedTransform("lsc", _lsc, "log σ(r − r_ref) (Wang et al. 2024)", reference="one"),
    NamedTransform("par", _par, "mean_m σ(r − r_ref,m) (Fu et al. 2025)", reference="many"),
    NamedTransform("step_clip", step_clip_rewards, "min(r_t − η, 0) per step (Gao et al. 2024)", steps=True),
    NamedTransform("step_delta", step_delta_rewards, "r_t − r_{t+1}, last step 0 (Gao et al. 2024)", steps=True),
):
    register_transform(_transform)


def transform_names() -> list[str]:
    return TRANSFORMS.names()


def get_transform(name: str) -> NamedTransform:
    try:
        return TRANSFORMS.get(name)
    except UnknownNameError as error:
        raise TransformError(str(error)) from None


def apply_transform(
    name: str,
    rewards: Sequence[float],
    *,
    args: Mapping[str, Any] | None = None,
    references: Sequence[Sequence[float]] | None = None,
    stats: RewardStats = RewardStats(),  # frozen, so sharing the default is safe
) -> list[float]:
    """Apply the transform registered as ``name`` to one request's rewards (computed in float64).

    ``references`` holds each reply's reference rewards (a list per reply) for ``lsc`` and
    ``par``. Bad names, options and missing references raise ``TransformError`` naming the field.
    """
    transform = get_transform(name)
    options = _check_options(transform, args or {})
    values = torch.tensor(list(rewards), dtype=torch.float64)
    inputs: dict[str, Any] = {}
    if transform.reference is not None:
        inputs["reference" if transform.reference == "one" else "references"] = _reference_tensor(
            transform, references, len(values)
        )
    if transform.uses_stats:
        inputs["stats"] = stats
    try:
        result = transform.apply(values, **inputs, **options)
    except TransformError:
        raise
    except ValueError as error:
        raise TransformError(str(error), field="transform.args") from None
    return result.tolist()


def _check_options(transform: NamedTransform, args: Mapping[str, Any]) -> dict[str, float]:
    allowed = transform.options
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        message = f"unknown option {unknown[0]!r} for {transform.name!r} (options: {names})"
        raise TransformError(message, "transform.args")
    missing = [k for k, default in allowed.items() if default is None and k not in args and not transform.uses_stats]
    if missing:
        raise TransformError(f"{transform.name!r} needs the option {missing[0]!r}", "transform.args")
    options = {}
    for key, value in args.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TransformError(f"option {key!r} must be a finite number (got {value!r})", "transform.args")
        options[key] = float(value)
    return options


def _reference_tensor(transform: NamedTransform, references: Sequence[Sequence[float]] | None, n: int) -> Tensor:
    if references is None or len(references) != n or any(len(r) == 0 for r in references):
        raise TransformError(
            f"{transform.name!r} needs a reference reward for every reply: give each item a 'reference' "
            "(a reference response to the same prompt)",
            field="items.reference",
        )
    counts = {len(r) for r in references}
    if transform.reference == "one" and counts != {1}:
        raise TransformError(f"{transform.name!r} takes exactly one reference per item", field="items.reference")
    if len(counts) != 1:
        raise TransformError("every item must have the same number of references", field="items.reference")
    table = torch.tensor([list(r) for r in references], dtype=torch.float64)
    return table[:, 0] if transform.reference == "one" else table
