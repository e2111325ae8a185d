"""The default executor: every unit in this process, one after the other."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from curate.executors.base import Executor, Task


class LocalExecutor(Executor):
    kind = "local"

    def map(self, task: Task, units: Sequence[Any]) -> Iterator[Any]:
        if not units:
            return
        task.setup()
        for unit in units:
            yield task(unit)
