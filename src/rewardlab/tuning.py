"""CPU settings for a run of rewardlab's own, applied when the run starts and never on import.

A library that changes process-wide state when imported changes it for whoever imports it: a TRL or
verl worker that loads the reward adapter would get rewardlab's malloc and MKL settings too. So
``rewardlab train``/``dpo`` (the CLI) and the training entry points call :func:`tune_cpu` for their
own run, and a Python user who wants the same numbers calls it first thing.

When it must be called: the two environment variables are read by the libraries themselves, once.
MKL reads ``MKL_CBWR`` at its first call (the first float matrix product of the process, not
``import torch``: set after the import and before a product it is applied, after a product it is
not); oneDNN reads its cache capacity when it builds its first kernel. Called later, they are set
but ignored by a library already running, and a process that computed before tuning keeps MKL's
and oneDNN's defaults (the malloc setting still applies to later allocations). So call it before
the first tensor computation, or before ``import torch`` to be safe; a user's own values win.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rewardlab.allocator import keep_freed_memory

ENVIRONMENT = {
    # Intel MKL picks kernels by memory alignment unless told otherwise, so two identical CPU runs can
    # differ in the last bits and drift apart over training. Strict conditional numerical
    # reproducibility makes seeded runs (and resumed ones) bitwise repeatable at no measurable cost here.
    "MKL_CBWR": "AUTO,STRICT",
    # oneDNN, PyTorch's CPU matrix library, keeps a compiled kernel with its buffers for each of the last
    # 1,024 shapes it met. Batches of varying length bring new shapes at almost every step, so that cache
    # grows all through training: on MiniLM it took one epoch's peak memory from 2.3 to 3.4 GB, at no
    # gain in speed (benchmarks/RESULTS.md).
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16",
}
"""The environment variables a run sets where the user has not set them."""


@dataclass(frozen=True)
class CpuTuning:
    """What :func:`tune_cpu` changed, so a caller can log it."""

    environment: dict[str, str] = field(default_factory=dict)
    """The variables it set (one the user had set is left alone and not listed)."""
    keeps_freed_memory: bool = False
    """Whether glibc's malloc now reuses freed large blocks (``allocator.py``)."""


def tune_cpu() -> CpuTuning:
    """Apply rewardlab's CPU settings to this process: bitwise-repeatable MKL, a small oneDNN kernel
    cache, and large freed blocks kept for reuse (see the module docstring for when to call it)."""
    applied = {name: value for name, value in ENVIRONMENT.items() if name not in os.environ}
    os.environ.update(applied)
    # large tensors reuse freed memory instead of page-faulting fresh pages (allocator.py)
    return CpuTuning(environment=applied, keeps_freed_memory=keep_freed_memory())
