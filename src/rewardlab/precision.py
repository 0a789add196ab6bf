"""Which number format to compute in, decided from the hardware rather than assumed."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
"""Every precision a user may ask for; ``auto`` is resolved by :func:`resolve_precision`."""


def precision_problem(value: object, option: str = "precision") -> str | None:
    """What is wrong with ``value`` as a precision, in one line naming ``option`` (how the user set
    it: ``precision``, ``train.precision``, ``--precision``), or None when it is one of :data:`PRECISIONS`.

    The one check every configuration uses, so that the allowed values and the message cannot drift apart.
    """
    if value in PRECISIONS:
        return None
    return f"{option} must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]} (got {value!r})"


@cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 matrices natively (AMX or AVX512-BF16).

    Without such units bf16 is emulated and slower than fp32, so it must never be the default.
    """
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False
    flags = cpuinfo.read_text(errors="replace")
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: Precision, device: torch.device | str = "cpu") -> Literal["bf16", "fp32"]:
    """Turn ``auto`` into ``bf16`` where the device computes it fast, else ``fp32``."""
    if problem := precision_problem(precision):
        raise ValueError(problem)
    if precision != "auto":
        return precision
    import torch  # here, so that the CLI's help and config checks need not load it

    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
