"""What every dedup method returns, and the manifest it becomes.

A method marks, per record, the kept record it duplicates (−1 = kept) and how similar the two are
(exact: 1; minhash: estimated Jaccard; semantic: cosine). The manifest's ``subset.parquet`` is the
kept records in pool order (score = how many records each one stands in for), and
``removed.parquet`` lists every removed id with the id it duplicated, so no drop is unexplained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from curate.config import Settings
from curate.manifest import write_manifest
from curate.metrics import common_metrics
from curate.pool import Pool
from curate.selectors.base import Selection

REMOVED_FILE = "removed.parquet"


@dataclass
class Duplicates:
    duplicate_of: np.ndarray  # int64 per row: row id of the kept record it duplicates, −1 = kept
    similarity: np.ndarray  # float64 per row: similarity to that record (NaN for kept rows)

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.duplicate_of < 0).astype(np.int64)

    @property
    def removed(self) -> np.ndarray:
        return np.flatnonzero(self.duplicate_of >= 0).astype(np.int64)


def removed_table(pool: Pool, dups: Duplicates, method: str) -> pa.Table:
    """One row per removed record: its id, the kept id it duplicated, the similarity, the method."""
    ids = pool.column("id")
    gone = dups.removed
    return pa.table(
        {
            "id": ids.gather(gone).to_arrow().cast(pa.string()),
            "duplicate_of": ids.gather(dups.duplicate_of[gone]).to_arrow().cast(pa.string()),
            "similarity": pa.array(dups.similarity[gone], pa.float64()),
            "reason": pa.array([method] * len(gone), pa.string()),
        }
    )


def write_dedup_manifest(
    settings: Settings,
    *,
    pool: Pool,
    selector: dict,
    params: dict,
    dups: Duplicates,
    metrics: dict,
    lineage: dict | None = None,
) -> dict:
    kept = dups.kept
    absorbed = np.bincount(dups.duplicate_of[dups.duplicate_of >= 0], minlength=len(dups.duplicate_of))[kept]
    n = len(dups.duplicate_of)
    all_metrics = {
        **common_metrics(pool, kept, False),
        "removed": int(n - len(kept)),
        "duplicate_fraction": round((n - len(kept)) / n, 6) if n else 0.0,
        **metrics,
    }
    doc, _ = write_manifest(
        settings,
        pool=pool,
        selector=selector,
        params=params,
        budget={"requested": 1.0, "selected": int(len(kept))},  # "every record that is not a duplicate"
        seed=0,
        target=None,
        selection=Selection(indices=kept, scores=absorbed.astype(np.float64), metrics=all_metrics),
        metrics=all_metrics,
        lineage=lineage,
        extras={REMOVED_FILE: removed_table(pool, dups, selector["name"])},
    )
    return doc


def read_removed(doc: dict) -> pl.DataFrame:
    """A dedup or filter manifest's removed records (empty frame for other manifests)."""
    from pathlib import Path

    path = Path(doc["path"]) / REMOVED_FILE
    return pl.read_parquet(path) if path.exists() else pl.DataFrame()
