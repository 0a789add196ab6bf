"""A thin training loop for a process reward model: batch of chains → step logits → step loss → step.

Process supervision (Lightman et al. 2023) trains every step's logit against that step's label; outcome
supervision, the outcome reward model (ORM) the paper compares it with, trains only the whole chain's
logit against its last label, so the two differ in nothing but the supervision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardlab.data.chains import StepChain
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import pad_batch
from rewardlab.models.step_scoring import step_rows
from rewardlab.precision import precision_problem, resolve_precision
from rewardlab.process.steps import batch_step_loss
from rewardlab.runs.checkpoint import TrainState, checkpoint_extra, load_checkpoint, save_checkpoint
from rewardlab.training.compute import ComputeModel

SUPERVISIONS = ("process", "outcome")


@dataclass
class ProcessTrainConfig:
    supervision: str = "process"
    """process: every step's label trains its prefix (a PRM); outcome: only the last label, on the whole
    chain (an ORM)."""
    epochs: float = 2.0
    """Passes over the training chains (a fraction stops part-way through the last)."""
    batch_chains: int = 8
    """Chains per optimiser step (with all their steps)."""
    lr: float = 3e-5
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient norm to this (None: no clipping)."""
    seed: int = 0
    """Seed of the chains' order."""
    save_every: int = 50
    """Checkpoint every this many steps (and at the last one) when training has a checkpoint folder."""
    precision: str = "auto"
    """auto: bf16 passes (fp32 weights and optimiser) where the CPU/GPU multiplies bf16 fast; bf16; fp32."""

    def problems(self) -> list[str]:
        found = []
        if self.supervision not in SUPERVISIONS:
            found.append(f"supervision must be one of {', '.join(SUPERVISIONS)} (got {self.supervision!r})")
        if not self.epochs > 0:
            found.append(f"epochs must be > 0 (got {self.epochs})")
        for name in ("batch_chains", "save_every"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not self.lr > 0:
            found.append(f"lr must be > 0 (got {self.lr})")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            found.append(f"max_grad_norm must be > 0 or None (got {self.max_grad_norm})")
        if problem := precision_problem(self.precision):
            found.append(problem)
        return found

    def steps(self, chains: int) -> int:
        """Optimiser steps for ``chains`` training chains."""
        return max(1, round(self.epochs * chains / min(self.batch_chains, chains)))


def chain_batches(chains: int, config: ProcessTrainConfig) -> list[list[int]]:
    """The chains of every step: a fresh seeded permutation each epoch, cut into ``batch_chains``."""
    size = min(config.batch_chains, chains)
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    while len(order) < config.steps(chains) * size:
        order += torch.randperm(chains, generator=generator)[: chains - chains % size].tolist()
    return [order[i * size : (i + 1) * size] for i in range(config.steps(chains))]


def train_process_model(
    model: RewardModel,
    chains: Sequence[StepChain],
    config: ProcessTrainConfig,
    log: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` (one output) in place on labelled ``chains``; returns one metrics entry per step.

    With ``checkpoint_dir`` the weights, AdamW moments, step and history are saved every ``save_every``
    steps and at the end (``runs.checkpoint``: safetensors and JSON, atomic), and ``resume=True``
    continues from them; the batches are a pure function of the seed, so a resumed run ends where an
    uninterrupted one would.
    """
    problems = config.problems()
    unlabelled = [c.source or c.id or f"chains[{i}]" for i, c in enumerate(chains) if c.labels is None]
    if unlabelled:
        problems.append(f"{len(unlabelled)} chains have no step labels (first: {unlabelled[0]})")
    if not chains:
        problems.append("no training chains")
    if problems:
        raise ValueError("invalid process training:\n" + "\n".join(f"  - {p}" for p in problems))
    outcome = config.supervision == "outcome"
    prompts, prefixes, owners = step_rows(chains, outcome_only=outcome)
    ids = model.encode(prompts, prefixes).ids
    labels = torch.tensor([label for c in chains for label in (c.labels[-1:] if outcome else c.labels)])
    rows_of: list[list[int]] = [[] for _ in chains]
    for row, owner in enumerate(owners):
        rows_of[owner].append(row)
    device = model.model.device
    precision = resolve_precision(config.precision, device)
    compute = ComputeModel(model, precision, device)
    trained = [p for p in model.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    batches = chain_batches(len(chains), config)
    history: list[dict[str, float]] = []
    if resume and checkpoint_dir is not None and (checkpoint_dir / "state.json").is_file():
        done = load_checkpoint(checkpoint_dir, model.model, optimizer, None).step
        history = checkpoint_extra(checkpoint_dir)["history"][:done]
        compute.refresh()
    compute.model.model.train()
    for step, batch in enumerate(batches[len(history) :], start=len(history) + 1):
        rows = [row for chain in batch for row in rows_of[chain]]
        chain_index = torch.tensor([position for position, chain in enumerate(batch) for _ in rows_of[chain]])
        input_ids, mask = pad_batch([ids[row] for row in rows], model.tokenizer.pad_token_id)
        logits = compute.model.rewards(input_ids.to(device), mask.to(device)).float().cpu()
        target = labels[rows]
        loss = batch_step_loss(logits, target, chain_index, len(batch))
        compute.backward(loss, last=True)
        grad_norm = compute.step(optimizer, None, config.max_grad_norm)
        agree = ((logits.detach() >= 0) == (target >= 0.5)).float().mean().item()
        history.append({"loss": loss.item(), "step_accuracy": agree, "grad_norm": grad_norm})
        if log is not None:
            log(step, history[-1])
        if checkpoint_dir is not None and (step % config.save_every == 0 or step == len(batches)):
            save_checkpoint(checkpoint_dir, model.model, optimizer, None, TrainState(step=step), {"history": history})
    compute.release()
    model.model.eval()
    return history
