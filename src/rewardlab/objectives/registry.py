"""Objectives by name: the one place a new loss is plugged in.

An objective is a pure function of tensors. Its parameters say what it needs: parameters named
after a batch field (``chosen``, ``rejected``, ``margin``, ``tie``...) receive that field, the
others are options the user sets in the config (``objective.args``). The trainer only asks the
registry; it never branches on an objective's name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

BATCH_FIELDS = frozenset({"chosen", "rejected", "margin", "tie"})
"""Tensors the trainer can hand to an objective, one value per pair."""


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

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        """Every problem with user-given options, so they can all be reported at once."""
        return [
            f"objective {self.name!r} has no option {key!r} (its options: {', '.join(self.options) or 'none'})"
            for key in options
            if key not in self.options
        ]

    def __call__(self, batch: Mapping[str, Tensor | None], **options: Any) -> ObjectiveOutput:
        problems = self.check_options(options)
        if problems:
            raise ValueError("; ".join(problems))
        return self.fn(**{name: batch.get(name) for name in self.inputs}, **options)


_OBJECTIVES: dict[str, Objective] = {}


def normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_objective(name: str) -> Callable[[Callable[..., ObjectiveOutput]], Callable[..., ObjectiveOutput]]:
    """Register ``fn`` under ``name``; a second registration of the same name is refused."""

    def decorate(fn: Callable[..., ObjectiveOutput]) -> Callable[..., ObjectiveOutput]:
        key = normalise_name(name)
        if key in _OBJECTIVES:
            raise ValueError(f"objective {key!r} is already registered")
        params = inspect.signature(fn).parameters.values()
        inputs = tuple(p.name for p in params if p.name in BATCH_FIELDS)
        options = {p.name: p.default for p in params if p.name not in BATCH_FIELDS}
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        _OBJECTIVES[key] = Objective(key, fn, inputs, options, summary)
        return fn

    return decorate


def get_objective(name: str) -> Objective:
    key = normalise_name(name)
    if key not in _OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; registered objectives: {', '.join(sorted(_OBJECTIVES))}")
    return _OBJECTIVES[key]


def objective_names() -> list[str]:
    return sorted(_OBJECTIVES)
