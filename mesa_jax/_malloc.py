"""glibc allocator settings for big compiled steps on the CPU (done at import).

XLA on the CPU allocates each step's large buffers afresh. With glibc's defaults, buffers
over the mmap threshold are mapped and unmapped on every step, and the threads of XLA's
pool allocate from arenas of their own, so every step pays a page fault for each 4 KiB of
its large arrays: Game of Life at 10^6 cells took ~18,000 minor faults and ~30 ms of
system time per step (34 ms a step; 2-core VM). One arena, no mmap for allocations and no
trimming keep freed memory in the heap for the next step: 0 faults, 13-15 ms. (A 1 GiB
trim threshold was not enough: 4,000 boids with all-pairs queries free over 1 GiB at
the heap's top some steps, and re-faulting it cost 1-2.5 s of system time on such steps.)

The cost: the heap stays at its peak (freed memory is reused by the process, not given
back to the system until it exits). ``MESA_JAX_TUNE_MALLOC=0`` leaves the allocator
alone. Only glibc (Linux) has ``mallopt``; elsewhere this does nothing. The arena limit only reaches
threads that have not allocated yet: it works when ``mesa_jax`` is imported before JAX
has run anything.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["tune_malloc", "TUNED"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_NO_TRIM = -1  # mallopt: never give the heap's top back
_TOP_PAD = 128 << 20


def tune_malloc() -> bool:
    """Apply the settings above; True when glibc took all of them."""
    if os.environ.get("MESA_JAX_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = [(_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NO_TRIM), (_M_TOP_PAD, _TOP_PAD)]
    return all(mallopt(p, v) == 1 for p, v in settings)


TUNED = tune_malloc()
