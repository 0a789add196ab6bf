"""A thin offline preference-training loop for a causal LM: batch → log-probs → loss → step → log.

The loss is looked up by name (:mod:`rewardlab.policy.registry`) and says what it needs: reference
log-probabilities are computed once before training (and cached on disk when ``cache_dir`` is
set), token-level guidance rewards from a guide model only for losses that read them. The policy's
log-probabilities come from one packed pass per batch (:mod:`rewardlab.models.logprobs`).

Where the hardware multiplies bf16 fast (``precision="auto"``), the passes run on a bf16 copy of the
policy while the optimiser keeps fp32 weights and moments (:class:`rewardlab.training.compute.ComputeWeights`,
shared with reward-model training). The reference's log-probabilities are then computed in bf16 too,
so that policy and reference agree exactly at the first step (the loss starts at log 2 for DPO), as
they would if both ran in fp32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from rewardlab.data.records import PreferencePair
from rewardlab.models.formatting import choose_format
from rewardlab.models.logprobs import PairLogps, PairTokens, pair_logps
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.models.reference import cached_reference_logps
from rewardlab.models.reward_model import bf16_copy
from rewardlab.policy.data_parallel import Processes, first_visit_logps, split_problems
from rewardlab.policy.lora import adapters_off
from rewardlab.policy.losses import dpo_token_rewards, weighted_batch_loss
from rewardlab.policy.registry import PolicyLoss, get_policy_loss
from rewardlab.precision import precision_problem, resolve_precision
from rewardlab.runs.checkpoint import TrainState, checkpoint_extra, load_checkpoint, save_checkpoint
from rewardlab.training.compute import ComputeWeights
from rewardlab.training.engines import sharded_compute
from rewardlab.training.sharding import ShardedCompute, Sharding


@dataclass
class PolicyTrainConfig:
    loss: str = "dpo"
    """The policy loss, any registered name (`rewardlab policy-losses`): dpo, ipo, or the online rules."""
    loss_args: dict[str, Any] = field(default_factory=dict)
    """Options of the loss, e.g. ``{"beta": 0.1}`` (see ``get_policy_loss(name).options``)."""
    steps: int = 100
    """Optimiser steps."""
    batch_pairs: int = 8
    """Pairs per optimiser step."""
    lr: float = 5e-7
    """AdamW learning rate (with LoRA, higher: e.g. 1e-4)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient norm to this (None: no clipping)."""
    seed: int = 0
    """Seed of the batch order (and of LoRA adapters' random start)."""
    text_format: str = "auto"
    """auto (the tokenizer's chat template when it has one), chat or plain."""
    max_prompt_tokens: int = 512
    """Prompts are cut from the left to this many tokens."""
    max_reply_tokens: int = 512
    """Replies are cut from the right to this many tokens."""
    max_row_tokens: int | None = None
    """Pack several pairs per row up to this many tokens (None: one pair per row)."""
    cache_dir: str | None = None
    """Where reference (and guide) log-probabilities are cached; None keeps them in memory only."""
    guide_beta: float = 0.1
    """β of the guide model's token rewards, for losses that need them (TGDPO)."""
    save_every: int = 50
    """Checkpoint every this many steps (and at the last one) when ``train_policy`` has a ``checkpoint_dir``."""
    precision: str = "auto"
    """auto: bf16 passes (fp32 weights and optimiser) where the CPU/GPU multiplies bf16 fast; bf16; fp32."""

    def problems(self, loss: PolicyLoss | None) -> list[str]:
        """Every problem with this configuration, so all can be fixed at once (``loss=None``: the
        loss is unknown, so its options cannot be checked, but everything else is)."""
        found = loss.check_options(self.loss_args) if loss is not None else []
        for name in ("steps", "batch_pairs", "max_prompt_tokens", "max_reply_tokens"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not self.lr > 0:
            found.append(f"lr must be > 0 (got {self.lr})")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            found.append(f"max_grad_norm must be > 0 or None (got {self.max_grad_norm})")
        if self.save_every < 1:
            found.append(f"save_every must be >= 1 (got {self.save_every})")
        if self.max_row_tokens is not None and self.max_row_tokens < 1:
            found.append(f"max_row_tokens must be >= 1 or None (got {self.max_row_tokens})")
        if problem := precision_problem(self.precision):
            found.append(problem)
        return found


@dataclass(frozen=True)
class PolicyTrainResult:
    history: list[dict[str, float]]
    """One entry per step: loss (the weighted batch loss optimised), chosen_reward, rejected_reward, margin,
    accuracy, logratio_data, grad_norm; the others are plain means over the batch's pairs."""
    precision: str
    """The precision the passes ran in (``auto`` resolved)."""


def train_policy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    config: PolicyTrainConfig,
    reference_model: torch.nn.Module | None = None,
    guide_model: torch.nn.Module | None = None,
    log: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    sharding: Sharding | None = None,
) -> PolicyTrainResult:
    """Train ``model`` in place on ``pairs`` with the configured loss.

    ``reference_model`` defaults to a frozen copy of ``model`` as it is before training (the usual
    SFT starting point). ``guide_model`` (a DPO-trained policy) is needed only by token-guided losses.
    Each pair's loss is scaled by its ``weight`` (:func:`rewardlab.policy.losses.weighted_batch_loss`,
    the reward-model trainer's reduction), so MAPL's and ConvexDA's pairs train as they do there.
    With ``checkpoint_dir``, the fp32 weights, AdamW moments, random state, step and history are
    saved there every ``save_every`` steps and at the end (:mod:`rewardlab.runs.checkpoint`,
    safetensors and JSON, atomic); ``resume=True`` continues from it, and since the batches are a
    pure function of the seed, the resumed run ends with the weights of an uninterrupted one. Pass
    ``model`` as it was before training (the reference is computed from it, or from
    ``reference_model``), not a half-trained one.

    Launched on several processes (``accelerate launch``), each trains on its share of every batch and
    the update is one process's (:mod:`rewardlab.policy.data_parallel`); ``sharding``
    (:func:`rewardlab.training.sharding.launch_sharding`) slices the policy, its gradients and AdamW's
    state across them, and rank 0's ``model`` holds the trained weights at the end (the others' are
    freed). Only rank 0 logs and writes checkpoints, in one process's format.
    """
    loss = get_policy_loss(config.loss)
    processes = Processes.current()
    problems = config.problems(loss)
    if loss.needs_token_rewards and guide_model is None:
        problems.append(f"policy loss {loss.name!r} needs token rewards: pass a guide_model (a DPO-trained policy)")
    if tokenizer.pad_token_id is None:
        problems.append("the tokenizer has no pad token; set tokenizer.pad_token before training")
    problems += weight_problems(pairs)
    problems += split_problems(loss, min(config.batch_pairs, len(pairs)), processes, sharding)
    if problems:
        raise ValueError("invalid policy training configuration:\n" + "\n".join(f"  - {p}" for p in problems))

    fmt = choose_format(tokenizer, config.text_format)
    tokens = encode_pairs(tokenizer, pairs, fmt, config.max_prompt_tokens, config.max_reply_tokens)
    device = next(model.parameters()).device
    precision = resolve_precision(config.precision, device)
    disable_dropout(model)
    compute = _compute(model, precision, sharding, device)
    sharded = isinstance(compute, ShardedCompute)
    trained = [p for p in (compute.module if sharded else model).parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    if sharded:
        compute.start(optimizer, None, config.max_grad_norm)  # DeepSpeed takes it over here
    pad = tokenizer.pad_token_id
    fixed = _fixed_fields(compute.module, tokens, pad, loss, config, reference_model, guide_model, precision, processes)
    fixed |= pair_fields(pairs, loss)
    weights = torch.tensor([pair.weight for pair in pairs], dtype=torch.float32)
    compute.module.train()
    order = batches(len(tokens), config.batch_pairs, config.steps, config.seed)
    history: list[dict[str, float]] = []
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and checkpoint is not None and (checkpoint / "state.json").is_file():
        if sharded:
            done = compute.load(checkpoint, optimizer, None).step
        else:
            done = load_checkpoint(checkpoint, model, optimizer, None).step
            compute.refresh()
        history = checkpoint_extra(checkpoint)["history"][:done]
    for step, indices in enumerate(order[len(history) :], start=len(history) + 1):
        mine = processes.share(indices)
        policy = pair_logps(compute.module, tokens.select(mine), tokenizer.pad_token_id, config.max_row_tokens)
        batch = {**policy.batch_fields(), **_rows(fixed, mine, policy, device)}
        out = loss(batch, **config.loss_args)
        objective = weighted_batch_loss(out.losses, weights[mine]) * (len(mine) / len(indices))  # a share of the mean
        compute.backward(objective, last=True)
        grad_norm = compute.step(optimizer, None, config.max_grad_norm)
        values = _step_values(objective, grad_norm, out.metrics, policy, batch, len(indices), processes)
        history.append(values)
        if log is not None and processes.main:
            log(step, values)
        if checkpoint is not None and (step % config.save_every == 0 or step == config.steps):
            if sharded:
                compute.gather()
                compute.save(checkpoint, optimizer, None, TrainState(step=step), {"history": history})
            elif processes.main:
                save_checkpoint(checkpoint, model, optimizer, None, TrainState(step=step), {"history": history})
    if sharded and checkpoint is None:  # else the last step's save gathered them (or the resume loaded them)
        compute.gather()  # the trained weights into rank 0's whole model
    compute.release()
    return PolicyTrainResult(history, precision)


def _compute(
    model: torch.nn.Module, precision: str, sharding: Sharding | None, device: torch.device
) -> ComputeWeights | ShardedCompute:
    """Where the passes run: the policy (or its bf16 copy), or its slices when the launch shards."""
    if sharding is None:
        return ComputeWeights(model, precision)
    return sharded_compute(model, sharding, precision, device)


def _step_values(
    objective: Tensor,
    grad_norm: float,
    metrics: dict[str, Tensor],
    policy: PairLogps,
    batch: dict[str, Tensor],
    pairs: int,
    processes: Processes,
) -> dict[str, float]:
    """The step's line of the history: the objective, the gradient norm, and the means over the global
    batch's ``pairs`` of the loss's metrics and of the log-ratio on the data (summed across processes)."""
    sums = {"loss": objective.detach().float(), **{name: v.float().sum() * (1 / pairs) for name, v in metrics.items()}}
    if "reference_chosen_logps" in batch:
        sums["logratio_data"] = data_logratio_sum(
            policy, batch["reference_chosen_logps"], batch["reference_rejected_logps"]
        ) * (1 / (2 * pairs))
    totals = processes.total(torch.stack(list(sums.values())).cpu()).tolist()
    values = dict(zip(sums, totals, strict=True))
    return {"loss": values.pop("loss"), "grad_norm": grad_norm, **values}


def weight_problems(pairs: Sequence[PreferencePair]) -> list[str]:
    """Pair weights the loss cannot use (the data readers refuse them too; Python callers may not)."""
    bad = [(i, p.weight) for i, p in enumerate(pairs) if not (math.isfinite(p.weight) and p.weight >= 0)]
    shown = ", ".join(f"pairs[{i}].weight = {w!r}" for i, w in bad[:3]) + (" ..." if len(bad) > 3 else "")
    return [f"pair weights must be finite and >= 0 ({len(bad)} are not: {shown})"] if bad else []


def data_logratio_sum(policy: PairLogps, reference_chosen_logps: Tensor, reference_rejected_logps: Tensor) -> Tensor:
    """Sum of log π(y|x) − log π_ref(y|x) over the batch's chosen and rejected replies (its mean is the
    history's ``logratio_data``).

    Not a KL: the replies are the data's, not samples of the policy, so it goes negative as soon
    as DPO pushes the rejected replies down more than it lifts the chosen ones. It measures drift
    on the training replies (0 at the start); the run's KL(π‖π_ref) estimate, on the policy's own
    samples, is :func:`rewardlab.policy.sampled_kl.sampled_kl`.
    """
    chosen = policy.chosen_logps.detach() - reference_chosen_logps
    rejected = policy.rejected_logps.detach() - reference_rejected_logps
    return torch.cat([chosen, rejected]).float().sum()


def _fixed_fields(
    model: torch.nn.Module,
    tokens: PairTokens,
    pad_id: int,
    loss: PolicyLoss,
    config: PolicyTrainConfig,
    reference_model: torch.nn.Module | None,
    guide_model: torch.nn.Module | None,
    precision: str,
    processes: Processes,
) -> dict[str, Tensor]:
    """Per-pair tensors computed once before training: the reference's log-probs and the guidance,
    in the dtype of ``model``, the module the policy's passes run on.

    Without a ``reference_model`` the reference is ``model`` as it is now, before any step (a LoRA
    model with its adapters switched off: its base), read without a copy. Losses that read
    ``old_*_logps`` (P3O, BRAIn) get ``model``'s own log-probs as it is now, before any step: the
    policy that sampled the replies in an on-policy round (never cached: a LoRA model with and
    without its adapters has one fingerprint).
    """
    fields: dict[str, Tensor] = {}
    if any(name.startswith("old_") for name in loss.inputs):
        old = _first_epoch_logps(model, tokens, pad_id, dataclasses.replace(config, cache_dir=None), processes)
        fields |= {f"old_{side}_logps": getattr(old, f"{side}_logps") for side in ("chosen", "rejected")}
    if not loss.needs_reference:
        return fields
    bf16 = precision == "bf16"
    reference = model if reference_model is None else bf16_copy(reference_model) if bf16 else reference_model
    if guide_model is not None and bf16:
        guide_model = bf16_copy(guide_model)
    with adapters_off(reference):
        ref = _first_epoch_logps(reference, tokens, pad_id, config, processes)
    fields |= {k: v for k, v in ref.batch_fields("reference_").items() if k.startswith("reference_")}
    if loss.needs_token_rewards:
        guide = _first_epoch_logps(guide_model, tokens, pad_id, config, processes)
        for side in ("chosen", "rejected"):
            fields[f"{side}_token_rewards"] = dpo_token_rewards(
                getattr(guide, f"{side}_token_logps"), getattr(ref, f"{side}_token_logps"), config.guide_beta
            )
    return fields


def pair_fields(pairs: Sequence[PreferencePair], loss: PolicyLoss) -> dict[str, Tensor]:
    """The per-pair labels a loss reads, from the pairs: ``strengths`` (``strength``; 1/2 for a tie
    without one, else 1), ``consistencies`` (``consistency``, else 1), and ``chosen_scores`` /
    ``rejected_scores`` (the ratings, NaN where unset; refused where a loss requires them, and a
    rating with several attributes is refused), ``judge_probabilities`` (``judge_probability``,
    NaN where unset), and ``groups`` (:func:`pair_groups`)."""

    def score(pair: PreferencePair, side: str) -> float:
        rating = getattr(pair, f"{side}_rating")
        if rating is not None and not isinstance(rating, int | float):
            raise ValueError(f"policy loss {loss.name!r} reads {side}_rating as one reward; got {rating!r}")
        return float("nan") if rating is None else float(rating)

    values = {
        "strengths": lambda p: p.strength if p.strength is not None else (0.5 if p.tie else 1.0),
        "consistencies": lambda p: 1.0 if p.consistency is None else p.consistency,
        "chosen_scores": lambda p: score(p, "chosen"),
        "rejected_scores": lambda p: score(p, "rejected"),
        "judge_probabilities": lambda p: float("nan") if p.judge_probability is None else p.judge_probability,
    }
    fields = {
        name: torch.tensor([get(p) for p in pairs], dtype=torch.float32)
        for name, get in values.items()
        if name in loss.inputs
    }
    if "groups" in loss.inputs:
        fields["groups"] = pair_groups(pairs, loss.name)
    if "chosen_scores" in loss.required:
        unrated = int((fields["chosen_scores"].isnan() | fields["rejected_scores"].isnan()).sum())
        if unrated:
            raise ValueError(
                f"policy loss {loss.name!r} needs every pair's chosen_rating and rejected_rating (the judge's "
                f"rewards); {unrated} of {len(pairs)} pairs lack one"
            )
    return fields


def pair_groups(pairs: Sequence[PreferencePair], loss_name: str) -> Tensor:
    """Each pair's group index (long): its ``annotator_group``, else its ``annotator``, numbered in
    sorted order of the names. A pair with neither is refused, naming where it came from."""
    names = [p.annotator_group if p.annotator_group is not None else p.annotator for p in pairs]
    missing = [i for i, name in enumerate(names) if name is None]
    if missing:
        where = pairs[missing[0]].source or f"pairs[{missing[0]}]"
        raise ValueError(
            f"{where}: policy loss {loss_name!r} needs each pair's group, from the field annotator_group "
            f"or annotator; {len(missing)} of {len(pairs)} pairs have neither (rewardlab data groups writes both)"
        )
    known = [name for name in names if name is not None]
    index = {name: i for i, name in enumerate(sorted(set(known)))}
    return torch.tensor([index[name] for name in known], dtype=torch.long)


def _first_epoch_logps(
    model: torch.nn.Module, tokens: PairTokens, pad_id: int, config: PolicyTrainConfig, processes: Processes
) -> PairLogps:
    """A frozen model's log-probs of the pairs training will visit (cached), read in the batches of
    the first epoch; rows of pairs a short run never visits are NaN.

    In bf16 a pair's log-probs move by a few tenths of a nat with the rows batched beside it; read
    this way, the policy and the reference see the same rows at the first visit of every pair, so
    the DPO loss starts at exactly log 2 in bf16 as in fp32. A run of fewer pairs than the data
    (steps x batch_pairs) reads only those. Over several processes, each reads its share of each of
    these batches, as it trains (:func:`rewardlab.policy.data_parallel.first_visit_logps`, not cached).
    """
    n = len(tokens)
    size = min(config.batch_pairs, n)
    visited = first_epoch(n, config.seed)[: config.steps * size]
    if processes.world > 1:
        first = [visited[i : i + size] for i in range(0, len(visited), size)]
        return first_visit_logps(model, tokens, pad_id, first, config.max_row_tokens, processes)
    logps = cached_reference_logps(
        model, tokens.select(visited), pad_id, config.cache_dir, config.batch_pairs, config.max_row_tokens
    ).logps
    index = torch.tensor(visited)

    def spread(values: Tensor) -> Tensor:
        fill = False if values.dtype == torch.bool else float("nan")
        out = torch.full((n, *values.shape[1:]), fill, dtype=values.dtype)
        out[index] = values
        return out

    return PairLogps(*(spread(getattr(logps, name)) for name in PairLogps.__dataclass_fields__))


def _rows(fixed: dict[str, Tensor], indices: list[int], policy: PairLogps, device: torch.device) -> dict[str, Tensor]:
    """The batch's rows of the precomputed tensors, token ones cut to the batch's reply widths."""
    widths = {"chosen": policy.chosen_token_mask.shape[1], "rejected": policy.rejected_token_mask.shape[1]}
    out = {}
    for name, tensor in fixed.items():
        rows = tensor[indices]
        if rows.dim() == 2:
            rows = rows[:, : widths["chosen" if "chosen" in name else "rejected"]]
        out[name] = rows.to(device)
    return out


def batches(n: int, batch_pairs: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches drawn from seeded shuffles of the pairs, one epoch after another."""
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < steps * min(batch_pairs, n):
        order += torch.randperm(n, generator=generator).tolist()
    size = min(batch_pairs, n)
    return [order[i * size : (i + 1) * size] for i in range(steps)]


def first_epoch(n: int, seed: int) -> list[int]:
    """The order of the pairs in the first epoch of :func:`batches` (whatever the number of steps)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def clip(trained: list[torch.nn.Parameter], max_norm: float | None) -> float:
    params = [p for p in trained if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
    return float(norm)


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout would make the policy's log-probabilities noisy against the reference's (computed
    in eval mode), so it is switched off, as in most DPO implementations."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
