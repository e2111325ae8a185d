"""Deduplication: exact, MinHash (fuzzy, LSH) and semantic (SemDeDup), one file per method.

Each method marks the record every removed record duplicates; ``dedup_pool`` freezes the result as
a manifest (kept records; ``removed.parquet`` with each removed id and the id it duplicated).
``curate dedup`` defaults to the semantic method (``--method`` picks another); the older pipeline
``dedup:`` section is the semantic method.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from curate.config import Settings
from curate.dedup.base import REMOVED_FILE, Duplicates, read_removed, write_dedup_manifest
from curate.dedup.exact import ExactDedupParams, ExactDedupStage, exact_duplicates
from curate.dedup.minhash import MinHashParams, MinHashStage, minhash_duplicates
from curate.dedup.semantic import semantic_duplicates
from curate.errors import InputError
from curate.ingest import IngestParams
from curate.io import atomic_path
from curate.pool import Pool
from curate.stages.base import Progress
from curate.stages.semdedup import SemDedupParams, SemDedupStage

DedupParams = ExactDedupParams | MinHashParams | SemDedupParams
METHODS = {  # params model → (method name, selector ref name, stage version, finder)
    ExactDedupParams: ("exact", "exact-dedup", ExactDedupStage.version, exact_duplicates),
    MinHashParams: ("minhash", "minhash", MinHashStage.version, minhash_duplicates),
    SemDedupParams: ("semantic", "semdedup", SemDedupStage.version, semantic_duplicates),
}


def dedup_pool(
    settings: Settings, pool: Pool, params: DedupParams, lineage: dict | None = None, progress: Progress | None = None
) -> tuple[dict, Duplicates]:
    """Run one dedup method on ``pool``; returns (its manifest, the duplicates found)."""
    _, ref_name, version, find = METHODS[type(params)]
    dups, metrics = find(pool, params, progress)
    doc = write_dedup_manifest(
        settings,
        pool=pool,
        selector={"name": ref_name, "version": version},
        params=params.model_dump(mode="json"),
        dups=dups,
        metrics=metrics,
        lineage=lineage,
    )
    return doc, dups


def run_dedup(
    settings: Settings, *, pool: str, params: DedupParams | dict | None = None, out: str | Path | None = None
) -> dict:
    """``curate dedup``: a pool deduplicated by the method ``params`` belong to (semantic by default)."""
    params = params if isinstance(params, tuple(METHODS)) else SemDedupParams(**(params or {}))
    doc, _ = dedup_pool(settings, Pool.load(settings, pool), params)
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
    Returns (the dedup manifest, the new pool's ingest report)."""
    from curate.steps.derive import derive_pool

    base = ingest_params or IngestParams()
    if base.embedding_field:
        raise InputError("dedup into a pool needs model embeddings; this pool brought its own vectors", field="dedup")
    params = params if isinstance(params, SemDedupParams) else SemDedupParams(**(params or {}))
    source = Pool.load(settings, pool)
    doc, dups = dedup_pool(settings, source, params)
    lineage = {"manifest": doc["id"], "parent": source.id}
    report = derive_pool(settings, source, dups.kept, into, base.model_copy(update={"replace": True}), lineage)
    return doc, report


__all__ = [
    "METHODS",
    "REMOVED_FILE",
    "DedupParams",
    "Duplicates",
    "ExactDedupParams",
    "MinHashParams",
    "SemDedupParams",
    "dedup_into_pool",
    "dedup_pool",
    "read_removed",
    "run_dedup",
]
