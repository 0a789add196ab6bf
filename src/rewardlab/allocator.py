"""Keep large freed blocks in the process instead of handing them back to the kernel at every free.

glibc's malloc serves a block over its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
unmaps it on ``free``, so the next tensor of that size is page-faulted in again, 4 kB at a time.
PyTorch's CPU allocator does not cache, and an encoder's attention scores pass 32 MB from about 300
tokens (16 rows x 12 heads x L² x 2 bytes for MiniLM in bf16): at max length 384 MiniLM trained
6-13 % faster with freed blocks reused (``benchmarks/allocator.py``). Turning off mmap for
allocations and raising the trim threshold keeps freed memory in the heap for reuse; peak memory
grows by what the heap cannot reuse (0.1-0.6 GB there). Applied by :func:`rewardlab.tuning.tune_cpu`
when a run starts, never on import: it holds for the whole process.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30
USER_SETTINGS = (
    "LD_PRELOAD",
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)


def uses_glibc() -> bool:
    """True on Linux with glibc, the only allocator these settings are for."""
    return sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed large blocks; True if it did.

    Leaves the allocator alone outside Linux with glibc, and wherever the user chose allocator
    settings of their own (one of ``USER_SETTINGS`` set, such as a preloaded jemalloc or tcmalloc).
    """
    if not uses_glibc() or any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
