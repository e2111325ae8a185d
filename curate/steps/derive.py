"""Pools made from other pools: the union of an ingest step's sources, and the records a filter,
dedup or selection kept. A derived pool is ingested like any file (so its features are the usual
cached stages; embeddings come from the cache by text hash) and records where it came from."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.io import locked, write_json
from curate.pool import Pool

_SOURCE = pl.col("meta").str.json_path_match("$.source")


def _columns(pool: Pool) -> list[pl.Expr]:
    cols = [pl.col("id"), pl.col("text")]
    if pool.has_domain:
        cols.append(pl.col("domain"))
    if _has_source(pool):  # records of several sources: keep each one's label
        cols.append(_SOURCE.alias("source"))
    return cols


def _ingest_frame(settings: Settings, frame: pl.LazyFrame, into: str, params: IngestParams, progress) -> dict:
    with tempfile.TemporaryDirectory(dir=settings.root, prefix=".tmp-derive-") as tmp:
        path = Path(tmp) / f"{into}.parquet"
        frame.sink_parquet(path)
        return ingest(settings, path, into, params, progress=progress)


def record_lineage(settings: Settings, pool_id: str, lineage: dict) -> None:
    """Note in pool.json where a derived pool's records came from (under the pool's lock)."""
    pool = Pool.load(settings, pool_id)
    with locked(pool.dir / ".pool.json.lock"):
        info = json.loads((pool.dir / "pool.json").read_text())
        if info.get("lineage") != lineage:
            info["lineage"] = lineage
            write_json(pool.dir / "pool.json", info)


def derive_pool(
    settings: Settings,
    parent: Pool,
    rows: np.ndarray,
    into: str,
    params: IngestParams,
    lineage: dict,
    progress=None,
) -> dict:
    """Ingest rows ``rows`` of ``parent`` (in pool order) as pool ``into``; returns the ingest report."""
    keep = pl.DataFrame({"row_id": np.sort(np.asarray(rows, np.int64))}).lazy()
    frame = parent.scan().join(keep, on="row_id", how="semi").sort("row_id").select(_columns(parent))
    has_domain = parent.has_domain
    fields = {"text_field": "text", "id_field": "id", "domain_field": "domain" if has_domain else None}
    report = _ingest_frame(settings, frame, into, IngestParams(**{**params.model_dump(), **fields}), progress)
    record_lineage(settings, report["pool"]["id"], {**lineage, "source_field": _has_source(parent)})
    return report


def _has_source(pool: Pool) -> bool:
    return bool(pool.info.get("lineage", {}).get("source_field"))


def union_pool(
    settings: Settings,
    sources: list[tuple[str, Pool]],
    into: str,
    params: IngestParams,
    prefix_ids: bool,
    progress=None,
) -> dict:
    """One pool of every source pool's records, each with its ``source`` label (and, when a source has
    no domain field, the label as its domain)."""
    parts = []
    for label, pool in sources:
        ident = (pl.lit(f"{label}:") + pl.col("id")) if prefix_ids else pl.col("id")
        domain = pl.col("domain").fill_null(label) if pool.has_domain else pl.lit(label)
        parts.append(
            pool.scan().select(ident.alias("id"), "text", domain.alias("domain"), pl.lit(label).alias("source"))
        )
    fields = {"text_field": "text", "id_field": "id", "domain_field": "domain"}
    report = _ingest_frame(
        settings, pl.concat(parts), into, IngestParams(**{**params.model_dump(), **fields}), progress
    )
    lineage = {"sources": {label: pool.id for label, pool in sources}, "source_field": True}
    record_lineage(settings, report["pool"]["id"], lineage)
    return report
