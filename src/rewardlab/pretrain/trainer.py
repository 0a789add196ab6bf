"""A thin pretraining loop: blocks → logits → per-token log-probs → objective → step → log.

The objective is looked up by name (:mod:`rewardlab.pretrain.objectives`) and says what it reads:
scores, bad flags, a value head's predictions. Token t is predicted from x_<t, so the fields of
token t+1 go with the logits at position t (and the value at position t predicts the score of
token t+1, as in the reference code). The batch order is a pure function of the seed, and the
checkpoint (safetensors and JSON, atomic, :mod:`rewardlab.runs.checkpoint`) holds the weights, the
AdamW moments, the scheduler and the step, so a resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rewardlab.policy.trainer import batches, clip
from rewardlab.pretrain.blocks import Blocks
from rewardlab.pretrain.model import PretrainLM
from rewardlab.pretrain.objectives import PretrainObjective, get_pretrain_objective
from rewardlab.progress import progress_bar
from rewardlab.runs.checkpoint import TrainState, checkpoint_extra, load_checkpoint, save_checkpoint
from rewardlab.runs.config import Checked


@dataclass
class PretrainConfig(Checked):
    objective: str = "mle"
    """mle, filtering, conditional, unlikelihood, rwr or awr (``rewardlab pretrain objectives``)."""
    objective_args: dict[str, Any] = field(default_factory=dict)
    """Options of the objective, e.g. ``{"alpha": 1.0}`` for unlikelihood, ``{"beta": 1.0}`` for RWR/AWR."""
    steps: int = 200
    batch_blocks: int = 8
    lr: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    seed: int = 0
    save_every: int = 100

    def problems(self) -> list[str]:
        found: list[str] = []
        try:
            found += get_pretrain_objective(self.objective).check_options(self.objective_args)
        except ValueError as e:
            found.append(str(e))
        for name in ("steps", "batch_blocks", "save_every"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.warmup_steps < 0:
            found.append(f"warmup_steps must be >= 0 (got {self.warmup_steps})")
        if not self.lr > 0:
            found.append(f"lr must be > 0 (got {self.lr})")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            found.append(f"max_grad_norm must be > 0 or None (got {self.max_grad_norm})")
        return found


def token_fields(model: PretrainLM, blocks: Blocks) -> dict[str, torch.Tensor]:
    """Per predicted token (B, T−1): its log-prob, its segment's score and bad flag, the value before it."""
    logits, values = model(blocks.ids)
    logps = torch.gather(F.log_softmax(logits[:, :-1].float(), dim=-1), 2, blocks.ids[:, 1:, None]).squeeze(-1)
    fields = {"logps": logps, "scores": blocks.scores[:, 1:], "is_bad": blocks.is_bad[:, 1:]}
    if values is not None:
        fields["values"] = values[:, :-1]
    return fields


def batch_loss(objective: PretrainObjective, model: PretrainLM, blocks: Blocks, options: dict[str, Any]):
    fields = token_fields(model, blocks)
    out = objective.token_losses(fields, **options)
    return out.losses.mean(), {k: v.float().mean().item() for k, v in out.metrics.items()}


def train_pretrain(
    model: PretrainLM,
    blocks: Blocks,
    config: PretrainConfig,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    log: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``blocks``; returns one entry per step (loss, grad_norm, lr, the
    objective's diagnostics). With ``checkpoint_dir``, saves every ``save_every`` steps and at the end;
    ``resume=True`` continues from the checkpoint there."""
    config.check()
    objective = get_pretrain_objective(config.objective)
    if objective.needs_values and model.value_head is None:
        raise ValueError(f"objective {objective.name} needs a value head: build the model with value_head=True")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    order = batches(len(blocks), config.batch_blocks, config.steps, config.seed)
    history: list[dict[str, float]] = []
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and checkpoint is not None and (checkpoint / "state.json").is_file():
        done = load_checkpoint(checkpoint, model, optimizer, scheduler).step
        history = checkpoint_extra(checkpoint)["history"][:done]
    model.train()
    with progress_bar(progress, f"pretraining ({objective.name})", config.steps) as advance:
        advance(len(history))
        for step, rows in enumerate(order[len(history) :], start=len(history) + 1):
            loss, metrics = batch_loss(objective, model, blocks.select(rows), config.objective_args)
            loss.backward()
            grad_norm = clip(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            values = {"loss": loss.item(), "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], **metrics}
            scheduler.step()
            history.append(values)
            if log is not None:
                log(step, values)
            advance(loss=f"{values['loss']:.3f}")
            if checkpoint is not None and (step % config.save_every == 0 or step == config.steps):
                save_checkpoint(checkpoint, model, optimizer, scheduler, TrainState(step=step), {"history": history})
    model.eval()
    return history


def _schedule(config: PretrainConfig) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to a tenth of the peak (GPT-2-style pretraining)."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))

    return factor
