"""Run untrusted Python in a confined child process: the ``python`` tool of a tool-augmented judge.

The child (``tools/confine.py``) confines itself with kernel mechanisms before the code runs: resource
limits, Landlock (files outside the work folder cannot be written, and nothing but the Python installation
and system libraries can be read) and seccomp (no sockets, no new processes or threads, no execve). A
temporary work folder is its only writable place and is deleted after; the environment is emptied; a
run past its time limit is killed with its whole process group. Where the kernel lacks Landlock or
seccomp the code is not run (``SandboxUnavailable``), never run unconfined.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONFINE = Path(__file__).with_name("confine.py")
UNAVAILABLE = 97
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")


class SandboxUnavailable(RuntimeError):
    """This machine's kernel cannot confine the code (no Landlock or seccomp), so it was not run."""


@dataclass(frozen=True)
class SandboxResult:
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def readable_paths() -> list[str]:
    """What the confined interpreter may read: its own installation and the system's shared libraries."""
    python = os.path.realpath(sys.executable)
    paths = {os.path.dirname(python), sys.base_prefix, sysconfig.get_paths()["stdlib"], str(CONFINE)}
    return sorted(paths | set(SYSTEM_LIBRARIES))


def run_python(
    code: str, *, timeout_s: float = 5.0, memory_mb: int = 256, file_mb: int = 8, max_output: int = 10_000
) -> SandboxResult:
    """Run ``code`` confined; its stdout and stderr (each cut to ``max_output`` characters) and exit code."""
    with tempfile.TemporaryDirectory(prefix="rewardlab-sandbox-") as folder:
        Path(folder, "main.py").write_text(code, encoding="utf-8")
        settings = {
            "folder": folder,
            "readable": readable_paths(),
            "memory_mb": memory_mb,
            "file_mb": file_mb,
            "cpu_seconds": max(1, int(timeout_s) + 1),
        }
        command = [os.path.realpath(sys.executable), "-I", "-S", str(CONFINE), json.dumps(settings)]
        process = subprocess.Popen(
            command,
            cwd=folder,
            env={"LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            timed_out = True
    if process.returncode == UNAVAILABLE and stderr.startswith("sandbox unavailable"):
        raise SandboxUnavailable(stderr.strip())
    return SandboxResult(stdout[:max_output], stderr[:max_output], None if timed_out else process.returncode, timed_out)
