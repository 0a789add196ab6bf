"""Peak resident memory of one stretch of a run (a cross-validation fold), not of the whole process.

``getrusage``'s ``ru_maxrss`` only grows, so after the first fold it would report the largest fold so
far. On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the process's high-water mark
(``VmHWM`` in ``/proc/self/status``, Linux ≥ 4.0), so each stretch measures its own peak. Where that
is not possible the process-wide peak is returned and :func:`reset_peak` says so.
"""

from __future__ import annotations

import resource
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Start a new peak from the current resident size; False where the system cannot (the peak
    read after is then the process's whole peak)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _vm_hwm_kb() is not None


def peak_mb() -> float:
    """Peak resident memory in MB since the last :func:`reset_peak` (or the process's start)."""
    kb = _vm_hwm_kb()
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return kb / 1024


def _vm_hwm_kb() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
