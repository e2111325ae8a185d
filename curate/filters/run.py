"""Run a filter step on a pool: every record measured (cached per pool and spec), the kept records
frozen as a manifest whose ``removed.parquet`` says why each other record went."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curate.config import Settings
from curate.dedup.base import REMOVED_FILE
from curate.executors.base import Task, read_row_range, row_ranges
from curate.executors.threads import map_units, retain_freed_memory
from curate.filters import FilterSpec, decide, measure
from curate.manifest import write_manifest
from curate.metrics import common_metrics
from curate.selectors.base import Selection
from curate.stages.base import Progress, Stage

if TYPE_CHECKING:
    from curate.pool import Pool

SELECTOR = {"name": "filter", "version": "1"}
VALUES_FILE = "values.parquet"
_ROWS_PER_UNIT = 20_000


def filter_texts(spec: FilterSpec, texts: pl.Series) -> pl.DataFrame:
    """Every value the spec measures, then ``kept`` and ``reason``, one row per text."""
    values = measure(spec, texts)
    kept, reason = decide(spec, values)
    return values.with_columns(pl.Series("kept", kept), reason)


class FilterTask(Task):
    """Values, kept flag and reason for rows [start, stop): rows are independent."""

    def __init__(self, records: Path, spec: FilterSpec) -> None:
        self.records, self.spec = records, spec

    def setup(self) -> None:
        retain_freed_memory()  # the measurements free and reallocate MB-sized arrays per batch

    def __call__(self, unit: tuple[int, int]) -> pl.DataFrame:
        return filter_texts(self.spec, read_row_range(self.records, ["text"], *unit)["text"])


class FilterStage(Stage):
    name = "filter"
    params: FilterSpec

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        frames, done = [], 0
        for frame in map_units(FilterTask(pool.records_path, self.params), row_ranges(pool.n_records, _ROWS_PER_UNIT)):
            frames.append(frame)
            done += frame.height
            progress(done, pool.n_records)
        values = pl.concat(frames) if frames else pl.DataFrame()
        values.write_parquet(out / VALUES_FILE, compression="zstd")
        by_reason = values["reason"].drop_nulls().value_counts(sort=True) if values.height else pl.DataFrame()
        removed_by = (
            dict(zip(by_reason["reason"].to_list(), by_reason["count"].to_list(), strict=True))
            if by_reason.height
            else {}
        )
        return {"kept": int(values["kept"].sum()) if values.height else 0, "removed_by": removed_by}


def filter_pool(
    settings: Settings, pool: Pool, spec: FilterSpec, lineage: dict | None = None, progress: Progress | None = None
) -> tuple[dict, np.ndarray]:
    """(the filter manifest, kept row ids in pool order)."""
    info = FilterStage(spec).run(pool, progress)
    values = pl.read_parquet(Path(info["path"]) / VALUES_FILE)
    kept = np.flatnonzero(values["kept"].to_numpy()).astype(np.int64) if values.height else np.zeros(0, np.int64)
    ids = pool.column("id")
    gone = values.with_columns(ids.alias("id")).filter(~pl.col("kept")).drop("kept")
    removed = gone.select("id", "reason", *[c for c in gone.columns if c not in ("id", "reason")])
    n = pool.n_records
    metrics = {
        **common_metrics(pool, kept, False),
        "removed": int(n - len(kept)),
        "removed_fraction": round((n - len(kept)) / n, 6) if n else 0.0,
        "removed_by": info["removed_by"],
    }
    doc, _ = write_manifest(
        settings,
        pool=pool,
        selector=SELECTOR,
        params=spec.model_dump(mode="json", exclude_none=True),
        budget={"requested": 1.0, "selected": int(len(kept))},  # "every record that passes"
        seed=0,
        target=None,
        selection=Selection(indices=kept, metrics=metrics),
        metrics=metrics,
        lineage=lineage,
        extras={REMOVED_FILE: removed.to_arrow()},
    )
    return doc, kept
