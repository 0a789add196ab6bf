"""``import rewardlab`` is cheap and changes nothing process-wide; runs tune the CPU themselves.

A TRL or verl worker that imports the reward adapter must keep its own environment and malloc
settings, so rewardlab's CPU settings (``tuning.py``) apply only where ``tune_cpu()`` is called.
glibc has no getter for ``mallopt``: the probe asks ``mallinfo2()`` whether a 64 MB block (over
glibc's largest mmap threshold, 32 MB) was served by ``mmap`` as glibc's default does.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

import rewardlab
from rewardlab import tuning
from rewardlab.allocator import USER_SETTINGS, uses_glibc

PROBE = """
import ctypes, json, os, sys

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]

def mmapped(size=64 * 2**20):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    grew = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return grew >= size

def changed(before):
    return sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))

start = dict(os.environ)
import rewardlab
result = {"import": changed(start), "heavy": sorted({"torch", "transformers"} & set(sys.modules))}
result["names"] = dir(rewardlab)
for name in [*rewardlab.__all__, "__version__"]:
    getattr(rewardlab, name)
result["touched"] = changed(start)
result["mmapped"] = mmapped()
applied = rewardlab.tune_cpu()
result["tuned"] = {k: os.environ.get(k) for k in ("MKL_CBWR", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
result["applied"], result["tuned_mmapped"] = applied.environment, mmapped()
print(json.dumps(result))
"""

THIRD_PARTY = {"TORCHINDUCTOR_CACHE_DIR"}
"""Set by ``import torch._dynamo`` itself (``torch/_inductor/runtime/cache_dir_utils.py``), which
loading ``RewardModel`` imports through transformers: not rewardlab's to leave alone."""


def has_mallinfo2() -> bool:
    return uses_glibc() and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")


@pytest.fixture(scope="module")
def probe() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {*USER_SETTINGS, *tuning.ENVIRONMENT}}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not has_mallinfo2(), reason="glibc's mallinfo2 (glibc 2.33 and later)")
def test_importing_leaves_the_environment_and_malloc_alone(probe):
    assert probe["import"] == []
    assert set(probe["touched"]) - THIRD_PARTY == set()  # every public name loaded, still nothing of rewardlab's
    assert probe["mmapped"]  # glibc's default: a 64 MB block is mmapped


@pytest.mark.skipif(not has_mallinfo2(), reason="glibc's mallinfo2 (glibc 2.33 and later)")
def test_tune_cpu_applies_the_settings(probe):
    assert probe["tuned"] == tuning.ENVIRONMENT
    assert probe["applied"] == tuning.ENVIRONMENT
    assert not probe["tuned_mmapped"]  # kept in the heap for reuse (allocator.py)


@pytest.mark.skipif(not has_mallinfo2(), reason="glibc's mallinfo2 (glibc 2.33 and later)")
def test_importing_is_lazy(probe):
    assert probe["heavy"] == []  # no torch, no transformers until a name is used
    assert set(rewardlab.__all__) | {"__version__"} <= set(probe["names"])


def test_a_users_own_settings_win(monkeypatch):
    monkeypatch.setattr(tuning, "keep_freed_memory", lambda: False)  # leave this process's malloc alone
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    applied = tuning.tune_cpu()
    assert applied.environment == {"MKL_CBWR": "AUTO,STRICT"}
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_public_names_and_version():
    assert rewardlab.__version__ == importlib.metadata.version("rewardlab")
    assert rewardlab.tune_cpu is tuning.tune_cpu
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        rewardlab.nothing  # noqa: B018


def test_cli_help_loads_neither_torch_nor_transformers():
    """``rewardlab --help`` and a command's ``--help`` answer without the heavy libraries (they load
    when a command runs), so the help is instant."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from rewardlab.cli import app\n"
        "for args in (['--help'], ['eval', '--help'], ['train', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
