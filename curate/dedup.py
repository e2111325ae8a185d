"""``curate dedup``: run the semantic-dedup stage on a pool and freeze the kept records as a manifest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from curate.config import Settings
from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.io import atomic_path
from curate.manifest import write_manifest
from curate.metrics import common_metrics
from curate.pool import Pool
from curate.selectors.base import Selection
from curate.stages.semdedup import SemDedupParams, SemDedupStage, load_duplicate_of

SELECTOR = {"name": "semdedup", "version": SemDedupStage.version}


def run_dedup(
    settings: Settings, *, pool: str, params: SemDedupParams | dict | None = None, out: str | Path | None = None
) -> dict:
    """Kept records (row order, weight 1, score = duplicates each one stands in for) as a manifest."""
    params = params if isinstance(params, SemDedupParams) else SemDedupParams(**(params or {}))
    the_pool = Pool.load(settings, pool)
    embed, cluster = the_pool.feature_path("embed"), the_pool.feature_path("cluster")
    if not (the_pool.has_feature("embed") and the_pool.has_feature("cluster")):
        raise InputError(f"pool '{the_pool.name}' needs embeddings and clusters; ingest with --embed and --clusters K")
    info = SemDedupStage(params, embed, cluster).run(the_pool)
    duplicate_of = load_duplicate_of(Path(info["path"]))
    kept = np.flatnonzero(duplicate_of < 0).astype(np.int64)
    absorbed = np.bincount(duplicate_of[duplicate_of >= 0], minlength=len(duplicate_of))[kept]
    metrics = {
        **common_metrics(the_pool, kept, False),
        "removed": int(len(duplicate_of) - len(kept)),
        "duplicate_fraction": info["duplicate_fraction"],
        "threshold_cosine": round(1.0 - params.eps, 6),
    }
    doc, _ = write_manifest(
        settings,
        pool=the_pool,
        selector=SELECTOR,
        params=params.model_dump(mode="json"),
        budget={"requested": 1.0, "selected": int(len(kept))},  # "every record that is not a duplicate"
        seed=0,
        target=None,
        selection=Selection(indices=kept, scores=absorbed.astype(np.float64), metrics=metrics),
        metrics=metrics,
    )
    if out is not None:
        with atomic_path(Path(out), directory=True) as tmp:
            tmp.rmdir()
            shutil.copytree(doc["path"], tmp)
    return doc


def dedup_into_pool(
    settings: Settings,
    *,
    pool: str,
    into: str,
    params: SemDedupParams | dict | None = None,
    ingest_params: IngestParams | None = None,
) -> tuple[dict, dict]:
    """Deduplicate ``pool`` and ingest the kept records as pool ``into``, so selections run on them.

    The kept records keep their ids, texts and domains (other fields stay behind in the source
    pool); embeddings come from the cache by text hash, so only the clusters are recomputed.
    Returns (the dedup manifest, the new pool's ingest report).
    """
    doc = run_dedup(settings, pool=pool, params=params)
    source = Pool.load(settings, pool)
    base = (ingest_params or IngestParams()).model_dump()
    if base.get("embedding_field"):
        raise InputError("dedup into a pool needs model embeddings; this pool brought its own vectors",
                         field="dedup")  # fmt: skip
    kept = pl.read_parquet(Path(doc["path"]) / "subset.parquet", columns=["id"])
    columns = ["id", "text", "domain"] if source.has_domain else ["id", "text"]
    records = source.scan().select(*columns, "row_id").join(kept.lazy(), on="id", how="semi").sort("row_id")
    fields = {"text_field": "text", "id_field": "id", "domain_field": "domain" if source.has_domain else None}
    with tempfile.TemporaryDirectory(dir=settings.root, prefix=".tmp-dedup-") as tmp:  # the pool keeps a copy
        path = Path(tmp) / f"{into}.parquet"
        records.drop("row_id").sink_parquet(path)
        report = ingest(settings, path, into, IngestParams(**{**base, **fields}))
    return doc, report
