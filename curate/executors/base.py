"""The executor interface: map a picklable task over a list of work units, results in unit order.

Every per-record stage (n-grams, embeddings, cluster assignment, DSIR scoring) is written as a
``Task`` over units the *driver* plans (row ranges of the pool, or parts of an artifact). The units
are the same whichever executor runs them, so each unit's result is bit-for-bit the same and the
driver writes the same artifact: partitioning is decided by curate, never by the engine. Reductions
(n-gram totals, k-means training on a sample, the global Gumbel top-k) stay on the driver.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field


class ExecutorSpec(BaseModel):
    """``executor: {kind: ray, address: ...}`` in a pipeline file; the string form means ``{kind: ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(
        None, description="Ray cluster address (ray://host:10001 or host:6379); default: RAY_ADDRESS, else start one."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a cluster started here (no address).")
    concurrency: int | None = Field(
        None, ge=1, description="Model-holding actors (embedding); default: the cluster's CPUs."
    )


class Task(ABC):
    """One kind of per-record work. Picklable; ``setup`` runs once per worker before any unit.

    ``stateful`` tasks (a model held in memory) run in a Ray actor pool so the model loads once per
    worker, not once per unit.
    """

    stateful: ClassVar[bool] = False

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load what every unit needs (a model, an index)."""

    @abstractmethod
    def __call__(self, unit: Any) -> Any:
        """The result for one unit; must depend on the unit only, never on which worker runs it."""


class Executor(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def map(self, task: Task, units: Sequence[Any]) -> Iterator[Any]:
        """``task(unit)`` for every unit, yielded in unit order (streamed, not collected)."""


_CURRENT: ContextVar[Executor | None] = ContextVar("curate_executor", default=None)


def make_executor(spec: ExecutorSpec | str | None) -> Executor:
    if spec is None or isinstance(spec, str):
        spec = ExecutorSpec(kind=spec or "local")
    if spec.kind == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(spec)
    from curate.executors.local import LocalExecutor

    return LocalExecutor()


def current_executor() -> Executor:
    """The executor of the enclosing ``use_executor`` block; local outside any."""
    ex = _CURRENT.get()
    if ex is None:
        from curate.executors.local import LocalExecutor

        return LocalExecutor()
    return ex


@contextlib.contextmanager
def use_executor(spec: Executor | ExecutorSpec | str | None) -> Iterator[Executor]:
    """Run the stages and selectors inside on ``spec`` (selectors take no executor argument)."""
    ex = spec if isinstance(spec, Executor) else make_executor(spec)
    token = _CURRENT.set(ex)
    try:
        yield ex
    finally:
        _CURRENT.reset(token)


def row_ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def read_row_range(path: Path, columns: list[str], start: int, stop: int) -> pl.DataFrame:
    """Rows [start, stop) of a Parquet file, reading only the row groups that overlap them."""
    f = pq.ParquetFile(path)
    groups, offset, first = [], 0, None
    for g in range(f.metadata.num_row_groups):
        rows = f.metadata.row_group(g).num_rows
        if offset < stop and offset + rows > start:
            groups.append(g)
            first = offset if first is None else first
        offset += rows
    if not groups:
        return pl.from_arrow(f.schema_arrow.empty_table().select(columns))
    table = f.read_row_groups(groups, columns=columns)
    return pl.from_arrow(table.slice(start - first, stop - start))
