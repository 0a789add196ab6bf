"""Reward-model training configuration: nested dataclasses, read from YAML, overridden by
``key.sub=value`` (the reading and the overrides are :mod:`rewardlab.runs.config`, shared with policy runs).

Every problem is collected and reported at once, so a user fixes a config in one go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.precision import precision_problem
from rewardlab.runs.config import ConfigError, RunConfig, load_run_config
from rewardlab.runs.data import SplitDataConfig
from rewardlab.runs.trackers import report_to_problems

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "ObjectiveConfig", "OptimConfig", "TrainConfig", "load_config"]


@dataclass
class DataConfig(SplitDataConfig):
    bootstrap_seed: int | None = None
    """Train on a bootstrap resample of the training split (drawn with replacement, seeded): one
    member of an ensemble of independently trained models."""
    balance_length: bool = False
    """Reweight the training pairs so that those whose chosen reply is the longer and those whose chosen
    reply is the shorter carry equal total weight (``data/length_balance.py``): length alone then
    explains no more of the labels one way than the other."""


@dataclass
class ModelConfig:
    backbone: str = "minilm"
    """``minilm`` (all-MiniLM-L6-v2, embedded), ``smollm2`` (SmolLM2-135M-Instruct, embedded) or a local
    model folder."""
    max_length: int = 384
    """Tokens per prompt and reply at most; longer texts are cut from the left, so the reply is what is kept."""
    text_format: str = "auto"
    """``chat`` (the tokenizer's chat template), ``plain`` (prompt + reply), or ``auto``: chat where the
    tokenizer has a template."""
    dropout: bool = False
    """Keep the backbone's dropout while training; off by default (little gain for reward models, slower
    attention on CPUs)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower steps."""
    head_init: str = "auto"
    """``probe``: fit the new reward head on the frozen backbone's features before fine-tuning
    (LP-FT, ``training/probe.py``); ``random``: start from the backbone's fresh head; ``auto``:
    probe where it applies (one reward per reply, trained on pairs), else random."""
    train_layers: int | None = None
    """Train only the top N transformer blocks and the head, freezing the embeddings and the blocks
    below (``training/partial.py``): faster steps, less memory; empty trains every weight."""


@dataclass
class ObjectiveConfig:
    name: str = "bradley_terry"
    """The objective (``rewardlab objectives`` lists them and their options)."""
    args: dict[str, Any] = field(default_factory=dict)
    """The objective's options, e.g. ``{label_smoothing: 0.1}``."""


@dataclass
class OptimConfig:
    lr: float = 2e-5
    """Peak learning rate of AdamW (linear warm-up, then cosine decay to 0)."""
    head_lr: float | None = None
    """Learning rate of the new scalar head (default: ``lr``); a fresh head may want a larger one."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming the learning rate up from 0."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm before each step."""
    adam_beta1: float = 0.9
    """AdamW's β₁ (first-moment decay)."""
    adam_beta2: float = 0.999
    """AdamW's β₂ (second-moment decay)."""


@dataclass
class TrainConfig(RunConfig):
    output_dir: str = "runs/reward-model"
    """Run folder: ``model/`` (the saved reward model), ``checkpoint/``, ``report/``, ``metrics.jsonl``,
    ``config.yaml``."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: float = 1.0
    """Passes over the training split (fractions allowed); ``max_steps`` wins when set."""
    max_steps: int | None = None
    """Optimiser steps in all, instead of ``epochs``."""
    batch_size: int = 8
    """Pairs per optimiser step, over all processes."""
    micro_batch_size: int | None = None
    """Pairs per forward pass and process; fewer than ``batch_size`` means gradient accumulation."""
    micro_batch_tokens: int | str | None = "auto"
    """Cap on padded tokens per forward pass (every row of a pair or ranking; a decoder packs a pair in one
    row), bounding memory whatever the lengths; ``null``: no cap; ``auto``: 2,048 in bf16, 1,024 in fp32.
    MiniLM trained as fast with 2,048 bf16 tokens as without a cap, in 9 % less memory; SmolLM2 in fp32
    faster and in 8.2 instead of 10.5 GB with 1,024 than with 2,048 (``benchmarks/RESULTS.md``)."""
    precision: str = "auto"
    """``auto`` (bf16 where the CPU or GPU computes it natively, else fp32), ``bf16`` or ``fp32``."""
    length_bucketing: bool = True
    """Group pairs of similar length into a step (less padding); off = plain shuffled batches."""
    eval_every: int = 25
    """Steps between validation passes (and at the last step)."""
    save_every: int = 50
    """Steps between checkpoints that ``--resume`` continues from (and at the last step)."""
    log_every: int = 10
    """Steps between rows of ``metrics.jsonl`` (and log lines when stderr is not a terminal)."""
    keep_best: bool = True
    """Save the weights of the best validation pass, not the last step's."""
    best_metric: str = "loss"
    """What ``keep_best`` compares: validation ``loss`` (lower is better) or ``accuracy``."""
    seed: int = 0
    """Seed of the head's initialisation, batch order and dropout: a seeded run repeats bit for bit."""
    num_threads: int | None = None
    """CPU threads for PyTorch; empty keeps PyTorch's default (one per core)."""
    report_to: str = "none"
    """Experiment trackers that also receive the metrics: none, or tensorboard, wandb, mlflow, trackio
    (comma-separated); each needs its extra, e.g. ``pip install 'rewardlab[tensorboard]'``."""
    tensorboard: bool = False
    """Same as adding ``tensorboard`` to ``report_to`` (kept for configs written before it)."""
    progress: bool = True
    """Show progress (a bar on a terminal, else a log line every ``log_every`` steps)."""

    def trackers(self) -> str:
        """``report_to``, with the older ``tensorboard: true`` folded in."""
        return f"{self.report_to},tensorboard" if self.tensorboard else self.report_to

    def problems(self) -> list[str]:
        problems = []
        positive = {
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "save_every": self.save_every,
            "log_every": self.log_every,
            "model.max_length": self.model.max_length,
        }
        problems += [f"{k} must be a positive integer (got {v})" for k, v in positive.items() if v < 1]
        for name, value in (
            ("micro_batch_size", self.micro_batch_size),
            ("micro_batch_tokens", self.micro_batch_tokens),
            ("model.train_layers", self.model.train_layers),
        ):
            if isinstance(value, int) and value < 1:
                problems.append(f"{name} must be positive (got {value})")
        if isinstance(self.micro_batch_tokens, str) and self.micro_batch_tokens != "auto":
            problems.append(
                f"micro_batch_tokens must be a positive integer, auto or null (got {self.micro_batch_tokens!r})"
            )
        if self.epochs <= 0 and self.max_steps is None:
            problems.append(f"epochs must be positive (got {self.epochs})")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be positive (got {self.max_steps})")
        if self.optim.lr <= 0:
            problems.append(f"optim.lr must be positive (got {self.optim.lr})")
        if self.optim.head_lr is not None and self.optim.head_lr <= 0:
            problems.append(f"optim.head_lr must be positive (got {self.optim.head_lr})")
        if not 0 <= self.optim.warmup_ratio < 1:
            problems.append(f"optim.warmup_ratio must be in [0, 1) (got {self.optim.warmup_ratio})")
        if problem := precision_problem(self.precision):
            problems.append(problem)
        if self.best_metric not in ("loss", "accuracy"):
            problems.append(f"best_metric must be loss or accuracy (got {self.best_metric!r})")
        problems += self.data.problems()
        problems += report_to_problems(self.trackers())
        if self.model.head_init not in ("auto", "random", "probe"):
            problems.append(f"model.head_init must be auto, random or probe (got {self.model.head_init!r})")
        from rewardlab.objectives import get_objective
        from rewardlab.training.probe import probe_applies

        try:
            objective = get_objective(self.objective.name)
            problems += objective.check_options(self.objective.args)
            problems += objective.check_values(self.objective.args)
            if self.model.head_init == "probe" and not probe_applies(objective):
                problems.append(
                    f"model.head_init=probe fits one reward per reply on pairs; objective {objective.name!r} "
                    "needs another head or rankings (use model.head_init=random)"
                )
        except ValueError as e:
            problems.append(str(e))
        return problems


def load_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """Defaults, then the YAML file, then overrides (``key.sub=value`` strings or a mapping); checked."""
    return load_run_config(TrainConfig(), path, overrides)
