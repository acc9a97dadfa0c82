"""keep_freed_memory(): freed working arrays are reused instead of faulted in afresh."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
from charlm.training.heap import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():   # like a training step: several 8 MiB arrays alive at once, then all freed
    blocks = [np.ones(1 << 21, dtype=np.float32) for _ in range(8)]
    del blocks
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_instead_of_faulted_in():
    pages = 8 * (8 << 20) // 4096              # 16,384 pages per step
    default, kept = faults("default"), faults("keep")
    # By default glibc hands memory back after each step and faults it in again: at least
    # one 8 MiB block's worth (2,048 pages) every step.
    assert default >= 10 * pages // 8
    # With the thresholds raised the first step's pages serve the next ten.
    assert kept < pages // 10
