"""Training configuration: nested dataclasses, read from YAML, overridden by ``key.sub=value``.

Every problem is collected and reported at once, so a user fixes a config in one go.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardlab.atomic import write_text_atomic


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class SplitDataConfig:
    """Which preference file to read and how to split it: shared by reward-model and policy runs,
    so that with the same defaults both hold out the same pairs."""

    path: str | None = None
    """Preference file or folder; empty means the embedded HH-RLHF harmless pairs."""
    columns: str | None = None
    """Field mapping, e.g. ``prompt=question,chosen=response_j,rejected=response_k``."""
    skip_bad_rows: bool = False
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0

    def problems(self) -> list[str]:
        fractions = (self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            return [f"data.validation_fraction + data.test_fraction must be in [0, 1) (got {fractions})"]
        return []


@dataclass
class DataConfig(SplitDataConfig):
    bootstrap_seed: int | None = None
    """Train on a bootstrap resample of the training split (drawn with replacement, seeded): one
    member of an ensemble of independently trained models."""


@dataclass
class ModelConfig:
    backbone: str = "minilm"
    max_length: int = 384
    text_format: str = "auto"
    dropout: bool = False
    gradient_checkpointing: bool = False
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
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 2e-5
    head_lr: float | None = None
    """Learning rate of the new scalar head (default: ``lr``); a fresh head may want a larger one."""
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999


@dataclass
class TrainConfig:
    output_dir: str = "runs/reward-model"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: float = 1.0
    max_steps: int | None = None
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
    length_bucketing: bool = True
    """Group pairs of similar length into a step (less padding); off = plain shuffled batches."""
    eval_every: int = 25
    save_every: int = 50
    log_every: int = 10
    keep_best: bool = True
    best_metric: str = "loss"
    seed: int = 0
    num_threads: int | None = None
    tensorboard: bool = False
    progress: bool = True

    def validate(self) -> None:
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
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision must be auto, bf16 or fp32 (got {self.precision!r})")
        if self.best_metric not in ("loss", "accuracy"):
            problems.append(f"best_metric must be loss or accuracy (got {self.best_metric!r})")
        problems += self.data.problems()
        if self.model.head_init not in ("auto", "random", "probe"):
            problems.append(f"model.head_init must be auto, random or probe (got {self.model.head_init!r})")
        from rewardlab.objectives import get_objective
        from rewardlab.training.probe import probe_applies

        try:
            objective = get_objective(self.objective.name)
            problems += objective.check_options(self.objective.args)
            if self.model.head_init == "probe" and not probe_applies(objective):
                problems.append(
                    f"model.head_init=probe fits one reward per reply on pairs; objective {objective.name!r} "
                    "needs another head or rankings (use model.head_init=random)"
                )
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ConfigError(problems)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))


def load_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """Defaults, then the YAML file, then overrides (``key.sub=value`` strings or a mapping); validated."""
    config = TrainConfig()
    problems: list[str] = []
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError([f"{path}: cannot read the config: {e}"]) from e
        if not isinstance(raw, dict):
            raise ConfigError([f"{path}: the config must be a mapping of keys to values"])
        problems += _apply_mapping(config, raw, prefix="", source=str(path))
    if not isinstance(overrides, Mapping):
        parsed, bad = parse_overrides(overrides)
        problems += bad
        overrides = parsed
    for key, value in overrides.items():
        problems += _set(config, key, value, source="override")
    if problems:
        raise ConfigError(problems)
    config.validate()
    return config


def parse_overrides(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``["optim.lr=1e-5", "epochs=1"]`` → values (read as YAML scalars) and any malformed items."""
    values, problems = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"override {item!r} is not key=value (e.g. optim.lr=1e-5)")
            continue
        try:
            values[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            values[key.strip()] = value
    return values, problems


def apply_overrides(root: Any, path: str | Path | None, overrides: Sequence[str]) -> list[str]:
    """Apply a YAML file, then ``key.sub=value`` overrides, to any nested config dataclass ``root``;
    every problem found, as for :func:`load_config` (which does this for :class:`TrainConfig`)."""
    problems: list[str] = []
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            return [f"{path}: cannot read the config: {e}"]
        if not isinstance(raw, dict):
            return [f"{path}: the config must be a mapping of keys to values"]
        problems += _apply_mapping(root, raw, prefix="", source=str(path))
    parsed, bad = parse_overrides(overrides)
    problems += bad
    for key, value in parsed.items():
        problems += _set(root, key, value, source="override")
    return problems


def _apply_mapping(target: Any, raw: dict, prefix: str, source: str) -> list[str]:
    problems = []
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and dataclasses.is_dataclass(getattr(target, str(key), None)):
            problems += _apply_mapping(getattr(target, key), value, f"{name}.", source)
        else:
            problems += _set(target, str(key), value, source, full_name=name)
    return problems


def _set(root: Any, dotted: str, value: Any, source: str, full_name: str | None = None) -> list[str]:
    """Set ``a.b.c`` on nested dataclasses, checking the value against the field's type."""
    full_name = full_name or dotted
    *parents, leaf = dotted.split(".")
    target = root
    for part in parents:
        child = getattr(target, part, None)
        if isinstance(child, dict):  # free-form options, e.g. objective.args.label_smoothing
            child[leaf] = value
            return []
        if not dataclasses.is_dataclass(child):
            return [f"{source}: unknown key {full_name!r}"]
        target = child
    fields = {f.name: f for f in dataclasses.fields(target)}
    if leaf not in fields:
        return [f"{source}: unknown key {full_name!r} (known here: {', '.join(fields)})"]
    hint = typing.get_type_hints(type(target))[leaf]
    ok, converted = _coerce(value, hint)
    if not ok:
        return [f"{source}: {full_name} = {value!r} is not a valid {_type_name(hint)}"]
    setattr(target, leaf, converted)
    return []


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        return (type(None) in options), None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is bool and isinstance(value, bool):
            return True, value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if origin is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            try:  # YAML reads 1e-5 (no dot) as a string
                return True, float(value)
            except ValueError:
                continue
        if origin is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return True, str(value)
        if origin is dict and isinstance(value, dict):
            return True, dict(value)
    return False, None


def _type_name(hint: Any) -> str:
    return " or ".join(getattr(t, "__name__", str(t)) for t in typing.get_args(hint) or (hint,))
