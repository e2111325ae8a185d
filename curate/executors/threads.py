"""Units on a few threads when the executor is local.

The local executor runs units one after the other, which leaves a second core idle during numpy-
and polars-heavy tasks that release the GIL (byte-level filters, MinHash signatures). Here those
tasks get a small thread pool instead; results still come back in unit order, so artifacts are the
same bytes. Any other executor (Ray) maps the units as it always does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curate.executors.base import Task, current_executor
from curate.executors.local import LocalExecutor


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
