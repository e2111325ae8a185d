"""Semantic dedup (SemDeDup) as a dedup method: the stage in ``curate.stages.semdedup`` finds the
duplicates; here each removed record also gets its cosine similarity to the record it duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.dedup.base import Duplicates
from curate.errors import InputError
from curate.pool import Pool
from curate.stages.base import Progress
from curate.stages.semdedup import SemDedupParams, SemDedupStage, load_duplicate_of


def semantic_duplicates(
    pool: Pool, params: SemDedupParams, progress: Progress | None = None
) -> tuple[Duplicates, dict]:
    if not (pool.has_feature("embed") and pool.has_feature("cluster")):
        raise InputError(f"pool '{pool.name}' needs embeddings and clusters; ingest with --embed and --clusters K")
    stage = SemDedupStage(params, pool.feature_path("embed"), pool.feature_path("cluster"))
    info = stage.run(pool, progress)
    duplicate_of = load_duplicate_of(Path(info["path"]))
    similarity = np.full(len(duplicate_of), np.nan)
    gone = np.flatnonzero(duplicate_of >= 0)
    if len(gone):
        x = pool.embeddings()
        similarity[gone] = np.einsum("ij,ij->i", np.asarray(x[gone]), np.asarray(x[duplicate_of[gone]]))
    return Duplicates(duplicate_of, similarity), {"threshold_cosine": round(1.0 - params.eps, 6)}
