"""Executors: where the per-record stages run (this process, or a Ray cluster)."""

from curate.executors.base import (
    Executor,
    ExecutorSpec,
    Task,
    current_executor,
    make_executor,
    read_row_range,
    use_executor,
)

__all__ = [
    "Executor",
    "ExecutorSpec",
    "Task",
    "current_executor",
    "make_executor",
    "read_row_range",
    "use_executor",
]
