"""The C allocator's policy in the package's processes: freed memory is kept for reuse, not handed back.

A training loop allocates and frees the same tensors thousands of times (a batch of 12 runs' 100×100 float32
factors is 480 KB). glibc's malloc serves a block above its mmap threshold with a fresh mapping and hands the top of
its heap back to the kernel once more than its trim threshold lies free there; both start at 128 KB and rise only
as mapped blocks are freed (mallopt(3)), so such a loop keeps getting fresh pages, each a page fault and a zeroing
by the kernel. Measured on the paper grid's depth-3 rkc batch (issue 18, 2026-12-02): 1.7–2.9 s of system time in
a 19–23 s process, and ~670 page faults per step; with the mmap threshold fixed at 32 MB (glibc's ceiling for its
own adjustment) and the trim threshold at 64 MB, 0.3 s, ~13 per step, and 1.1x less wall time.

``reproduce``, whose grids train batches of runs, applies it to its own process (``keep_freed_memory``) and,
through the environment glibc reads at start-up (``allocator_environment``), to the grid workers it starts. The
single-run commands do not: one run's 100×100 factors (40 KB) are below glibc's first threshold anyway, and an
``mf`` run measured 2% slower with the policy than without (8 interleaved pairs, within the noise). Thresholds the
user set in the environment are left as they are. Importing the library changes nothing: a library does not retune
its host process's allocator. Where the C library has no ``mallopt`` (musl, macOS) only the environment is set,
which such libraries ignore.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "allocator_environment", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20  # bytes: blocks below this come from the heap, so they are reused
TRIM_THRESHOLD = 64 << 20  # bytes of free heap top kept before any is handed back to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>


def allocator_environment() -> dict[str, str]:
    """The environment variables that give a new process's glibc malloc the package's thresholds.

    Returns
    -------
    dict of str to str
        ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` (mallopt(3)), in bytes.
    """
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def keep_freed_memory() -> bool:
    """Give this process's malloc the package's thresholds, and the environment its child processes inherit.

    Nothing changes when either variable of ``allocator_environment`` is already set: the user's (or a parent's)
    choice, which glibc applied when this process started.

    Returns
    -------
    bool
        Whether this call set the thresholds of this process (False: already chosen, or no ``mallopt``).
    """
    if any(name in os.environ for name in allocator_environment()):
        return False
    os.environ.update(allocator_environment())
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to load, or one without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
