"""Semantic deduplication (SemDeDup / NeMo Curator style; ALGORITHMS.md §6.5).

Near-duplicates (paraphrases, templated copies) land in the same k-means cluster, so pairs are only
searched inside each cluster: faiss range search for cosine > 1 − eps, never an n×n matrix over the
pool. Members are ordered (nearest the centroid first by default) and a member is a duplicate when
it is that similar to an earlier *kept* member (``criterion="kept"``, so no record is dropped without
a kept stand-in) or to any earlier member (``"any_earlier"``, SemDeDup's and NeMo's rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import faiss
import numpy as np
from pydantic import Field

from curate.stages.base import Progress, Stage, StageParams

if TYPE_CHECKING:
    from curate.pool import Pool

_QUERY_ROWS = 8192  # range-search queries per call: bounds the result buffer on huge clusters


class SemDedupParams(StageParams):
    eps: float = Field(0.05, gt=0, lt=1, description="Duplicate when cosine similarity > 1 − eps.")
    keep: Literal["centroid", "outlier", "first"] = Field(
        "centroid",
        description="Which member of a duplicate group survives: nearest the centroid, "
        "farthest from it, or the first in row order.",
    )
    criterion: Literal["kept", "any_earlier"] = Field(
        "kept", description="Compare with earlier kept members (default) or with any earlier member (SemDeDup)."
    )


def similar_pairs(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i ≠ j, with ⟨x_i, x_j⟩ > threshold, as local indices of ``x`` (exact faiss search)."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    heads, tails = [], []
    for start in range(0, len(x), _QUERY_ROWS):
        lims, _, ids = index.range_search(x[start : start + _QUERY_ROWS], threshold)
        heads.append(np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64)))
        tails.append(ids)
    i, j = np.concatenate(heads), np.concatenate(tails).astype(np.int64)
    return i[i != j], j[i != j]


def resolve_duplicates(pos: np.ndarray, i: np.ndarray, j: np.ndarray, criterion: str) -> np.ndarray:
    """For members at order positions ``pos``, the local index each duplicate is assigned to
    (−1 = kept). ``criterion="kept"`` is the sequential greedy rule, evaluated in vectorised rounds:
    a member whose earlier neighbours are all decided is kept unless one of them was kept."""
    n = len(pos)
    early = pos[i] < pos[j]
    src, dst = i[early], j[early]  # src comes before dst in the keep order
    owner = np.full(n, -1, np.int64)
    if criterion == "any_earlier":
        first = np.lexsort((pos[src], dst))  # per dst, its earliest similar member as the stand-in
        dst_sorted, src_sorted = dst[first], src[first]
        head = np.concatenate(([True], dst_sorted[1:] != dst_sorted[:-1])) if len(first) else np.empty(0, bool)
        owner[dst_sorted[head]] = src_sorted[head]
        return owner
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 duplicate
    while (state == 0).any():
        pending = np.bincount(dst[state[src] == 0], minlength=n)  # earlier neighbours still undecided
        by_kept = state[src] == 1
        hit = np.zeros(n, bool)
        hit[dst[by_kept]] = True
        dup = (state == 0) & hit
        first = np.lexsort((pos[src[by_kept]], dst[by_kept]))
        d_sorted, s_sorted = dst[by_kept][first], src[by_kept][first]
        head = np.concatenate(([True], d_sorted[1:] != d_sorted[:-1])) if len(first) else np.empty(0, bool)
        stand_in = np.full(n, -1, np.int64)
        stand_in[d_sorted[head]] = s_sorted[head]
        owner[dup] = stand_in[dup]
        state[dup] = 2
        state[(state == 0) & (pending == 0)] = 1
    return owner


class SemDedupStage(Stage):
    name = "semdedup"
    params: SemDedupParams

    def __init__(self, params: SemDedupParams, embeddings_dir: Path, cluster_dir: Path) -> None:
        super().__init__(params)
        self.embeddings_dir, self.cluster_dir = embeddings_dir, cluster_dir

    def config(self, pool: Pool) -> dict:
        cfg = super().config(pool)
        cfg["embeddings"], cfg["clusters"] = self.embeddings_dir.name, self.cluster_dir.name
        return cfg

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        x = np.load(self.embeddings_dir / "embeddings.npy", mmap_mode="r")
        assign = np.load(self.cluster_dir / "assign.npy")
        distance = np.load(self.cluster_dir / "distance.npy")
        n = len(assign)
        duplicate_of = np.full(n, -1, np.int64)
        order = np.argsort(assign, kind="stable")
        bounds = np.searchsorted(assign[order], np.arange(assign.max() + 2 if n else 1))
        threshold = 1.0 - self.params.eps
        done = 0
        for c in range(len(bounds) - 1):  # one faiss search per cluster, never across clusters
            rows = order[bounds[c] : bounds[c + 1]]
            if len(rows) < 2:
                continue
            i, j = similar_pairs(np.ascontiguousarray(x[rows], dtype=np.float32), threshold)
            if self.params.keep == "first":
                pos = np.arange(len(rows))
            else:
                sign = 1.0 if self.params.keep == "centroid" else -1.0
                pos = np.argsort(np.lexsort((rows, sign * distance[rows])))  # rank in the keep order
            owner = resolve_duplicates(pos, i, j, self.params.criterion)
            dup = owner >= 0
            duplicate_of[rows[dup]] = rows[owner[dup]]
            done += len(rows)
            progress(done, n)
        np.save(out / "duplicate_of.npy", duplicate_of)
        removed = int((duplicate_of >= 0).sum())
        return {"removed": removed, "kept": n - removed, "duplicate_fraction": round(removed / n, 6) if n else 0.0}


def load_duplicate_of(path: Path) -> np.ndarray:
    """Per record, the row id of the kept record it duplicates (−1 = kept)."""
    return np.load(path / "duplicate_of.npy")
