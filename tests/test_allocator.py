"""The allocator's policy: freed blocks stay in the heap for reuse; the user's choice stands."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from implicitrank.allocator import allocator_environment

VARIABLES = tuple(allocator_environment())

# Blocks of 1 MB and 4 MB (a batch's factors and stage buffers are of this size: 12 runs of 100×100 float32 are
# 480 KB), each allocated, then freed, after torch is imported; prints, for each, the bytes glibc mapped for it, the
# bytes it unmapped when the block was freed, and the bytes free in the heap then (mallinfo2(3), glibc >= 2.33), and
# what keep_freed_memory returned.
BLOCKS = """
import ctypes, json, sys
from implicitrank.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "policy" else None
import torch
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
blocks = []
for megabytes in (1, 4):
    before = mallinfo2()
    block = torch.ones(megabytes << 18)
    held = mallinfo2()
    del block
    freed = mallinfo2()
    blocks.append({"bytes": megabytes << 20, "mapped": held.hblkhd - before.hblkhd,
                   "unmapped_at_free": held.hblkhd - freed.hblkhd, "free_in_heap": freed.fordblks})
print(json.dumps({"applied": applied, "blocks": blocks}))
"""


def _clean_environment(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in VARIABLES} | {"OMP_NUM_THREADS": "1"} | extra


def _blocks(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", BLOCKS, mode], env=_clean_environment(), capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="the C library is not glibc >= 2.33")
def test_with_the_policy_a_batch_sized_block_comes_from_the_heap_and_stays_there_once_freed() -> None:
    """The mechanism of the policy, which is deterministic: with glibc's start-up thresholds each block above the
    current mmap threshold is a fresh mapping, handed back to the kernel when freed (so the next step's block of that
    size costs fresh pages, a page fault each); with the policy it comes from the heap, and its memory stays in the
    heap for the next allocation. What this saves a training loop depends on the order the loop frees its blocks in
    (glibc raises its threshold as mapped blocks are freed): benchmarks/bench_allocator.py measures the page faults
    and time of the paper's depth-3 batch."""
    default, policy = _blocks("default"), _blocks("policy")
    assert default["applied"] is None and policy["applied"] is True
    for block in default["blocks"]:
        assert block["mapped"] >= block["bytes"] and block["unmapped_at_free"] == block["mapped"], default
    for block in policy["blocks"]:
        assert block["mapped"] == 0, policy
        assert block["free_in_heap"] >= block["bytes"] - 4096, policy  # all of it, but for glibc's bookkeeping


def test_a_threshold_set_by_the_user_is_left_as_it_is() -> None:
    code = ("import os; from implicitrank.allocator import keep_freed_memory; applied = keep_freed_memory(); "
            "print(applied, os.environ.get('MALLOC_MMAP_THRESHOLD_'), os.environ['MALLOC_TRIM_THRESHOLD_'])")
    done = subprocess.run([sys.executable, "-c", code], env=_clean_environment(MALLOC_TRIM_THRESHOLD_="131072"),
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "None", "131072"]


def test_reproduce_hands_the_policy_to_the_processes_it_starts(tmp_path) -> None:
    """``reproduce`` (whose grids train batches) sets the environment its grid workers start with; the single-run
    commands leave the allocator alone."""
    code = ("import contextlib, os, sys; from implicitrank.cli import main\n"
            "with contextlib.suppress(SystemExit): main(sys.argv[1:])\n"
            f"print(*[os.environ.get(k) for k in {VARIABLES!r}])")
    for argv, expected in ((["reproduce", "--list"], list(allocator_environment().values())),
                           (["mf", "--depth", "0"], ["None", "None"])):  # refused in the command
        done = subprocess.run([sys.executable, "-c", code, *argv], env=_clean_environment(), capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.stdout.split()[-2:] == expected, argv
