"""Units on a few threads when the executor is local.

The local executor runs units one after the other, which leaves a second core idle during numpy-
and polars-heavy tasks that release the GIL (byte-level filters, MinHash signatures). Here those
tasks get a small thread pool instead; results still come back in unit order, so artifacts are the
same bytes. Any other executor (Ray) maps the units as it always does.

Such tasks allocate and free arrays of a few MB per batch. glibc hands blocks that large to the
kernel on free (mmap, or trimming the heap top) and page-faults them back on the next batch; those
faults took a third of the byte-level filters' time, and they serialise threads on the process's
memory map lock. ``retain_freed_memory`` keeps freed blocks for reuse instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curate.executors.base import Task, current_executor
from curate.executors.local import LocalExecutor

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the (reused) heap
_TRIM_THRESHOLD = 512 << 20  # free memory at the heap top kept before any is returned
_retained = False


def retain_freed_memory() -> bool:
    """Make glibc keep freed blocks up to 32 MB for reuse (once per process; a no-op elsewhere).

    The cost is that a process's resident memory stays near its peak until it exits, which a
    worker running stages of the same size is anyway. Measured on the filter benchmark: all rule
    filters 94-96k → 116-134k records/s on one thread. Returns whether the setting is in force."""
    global _retained
    if _retained or not sys.platform.startswith("linux"):
        return _retained
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    _retained = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _retained


def map_units(task: Task, units: Sequence[Any], threads: int | None = None) -> Iterator[Any]:
    executor = current_executor()
    workers = threads or min(4, os.cpu_count() or 1)
    if not isinstance(executor, LocalExecutor) or workers < 2 or len(units) < 2:
        yield from executor.map(task, units)
        return
    task.setup()
    with ThreadPoolExecutor(workers, thread_name_prefix="curate-unit") as pool:
        pending = [pool.submit(task, u) for u in units[:workers]]
        for i in range(len(units)):  # at most `workers` results held at once
            result = pending[i].result()
            pending[i] = None
            if i + workers < len(units):
                pending.append(pool.submit(task, units[i + workers]))
            yield result
