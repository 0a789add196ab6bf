"""``rewardlab.tune_cpu()`` makes large freed tensors reuse their memory instead of faulting in fresh pages."""

import os
import subprocess
import sys

import pytest

from rewardlab.allocator import USER_SETTINGS, uses_glibc

PAGES = 64 * 2**20 // 4096  # a 64 MB tensor, over glibc's largest mmap threshold (32 MB)

# Allocates and frees the tensor six times; prints the minor page faults of the last three allocations.
PROBE = f"""
import resource, torch, rewardlab
rewardlab.train  # the library loaded, then tuned, as rewardlab.train does
rewardlab.tune_cpu()
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones({PAGES * 1024})
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(sum(faults[3:]))
"""


def late_faults(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not uses_glibc(), reason="glibc's malloc only")
def test_large_blocks_are_reused_unless_the_user_set_the_allocator():
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    assert late_faults(env) < PAGES // 10  # reused: no fresh page for most of three 64 MB tensors
    # a user's own allocator setting (here a neutral glibc tunable) leaves glibc's default: unmapped on free
    assert late_faults({**env, "GLIBC_TUNABLES": "glibc.malloc.perturb=0"}) >= 3 * PAGES * 0.9
