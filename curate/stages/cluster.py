"""Spherical k-means (faiss) on the pool's embeddings: cluster id and cosine distance per record."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from pydantic import Field

from curate.executors.base import Task, current_executor, row_ranges
from curate.stages.base import Progress, Stage, StageParams

if TYPE_CHECKING:
    from curate.pool import Pool

MAX_AUTO_K = 1024
_ASSIGN_ROWS = 65_536


class ClusterParams(StageParams):
    k: int | None = Field(None, ge=1, description="Clusters; default round(sqrt(n)) clipped to [1, 1024].")
    niter: int = Field(20, ge=1, description="k-means iterations.")
    max_points_per_centroid: int = Field(256, ge=1, description="Training sample = k × this (faiss).")
    seed: int = Field(0, description="Seeds the training sample and the initial centroids.")


def auto_k(n: int) -> int:
    return max(1, min(MAX_AUTO_K, round(math.sqrt(n)), n))


class ClusterStage(Stage):
    name = "cluster"
    params: ClusterParams

    def __init__(self, params: ClusterParams, embeddings_dir: Path) -> None:
        super().__init__(params)
        self.embeddings_dir = embeddings_dir

    def config(self, pool: Pool) -> dict:
        cfg = super().config(pool)
        cfg["params"] = {**cfg["params"], "k": self.k(pool)}
        cfg["embeddings"] = self.embeddings_dir.name  # content-keyed: changes when the model does
        return cfg

    def k(self, pool: Pool) -> int:
        return min(self.params.k or auto_k(pool.n_records), max(pool.n_records, 1))

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        x = np.load(self.embeddings_dir / "embeddings.npy", mmap_mode="r")
        n, d = x.shape
        k = self.k(pool)
        rng = np.random.default_rng(np.random.SeedSequence(self.params.seed))
        n_train = min(n, k * self.params.max_points_per_centroid)
        sample = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
        train = np.ascontiguousarray(x[sample], dtype=np.float32)
        kmeans = faiss.Kmeans(
            d,
            k,
            niter=self.params.niter,
            seed=self.params.seed,
            spherical=True,
            max_points_per_centroid=self.params.max_points_per_centroid,
            verbose=False,
        )
        kmeans.train(train)
        centroids = kmeans.centroids.astype(np.float32)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        assign = np.empty(n, np.int32)
        distance = np.empty(n, np.float32)
        task = AssignTask(self.embeddings_dir / "embeddings.npy", centroids)
        units = row_ranges(n, _ASSIGN_ROWS)  # the reduction (training) is above; assignment is per row
        for (start, stop), (ids, dist) in zip(units, current_executor().map(task, units), strict=True):
            assign[start:stop], distance[start:stop] = ids, dist
            progress(stop, n)
        np.save(out / "centroids.npy", centroids)
        np.save(out / "assign.npy", assign)
        np.save(out / "distance.npy", distance)
        sizes = np.bincount(assign, minlength=k)
        return {
            "k": k,
            "trained_on": int(n_train),
            "mean_distance": float(distance.mean(dtype=np.float64)) if n else None,
            "empty_clusters": int((sizes == 0).sum()),
            "largest_cluster": int(sizes.max()) if n else 0,
        }


class AssignTask(Task):
    """Nearest centroid (inner product on unit vectors) for rows [start, stop) of the embeddings."""

    def __init__(self, embeddings: Path, centroids: np.ndarray) -> None:
        self.embeddings, self.centroids = embeddings, centroids
        self.index = None

    def __getstate__(self) -> dict:
        return {"embeddings": self.embeddings, "centroids": self.centroids, "index": None}

    def setup(self) -> None:
        if self.index is None:
            self.index = faiss.IndexFlatIP(self.centroids.shape[1])
            self.index.add(self.centroids)

    def __call__(self, unit: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        x = np.load(self.embeddings, mmap_mode="r")
        block = np.ascontiguousarray(x[unit[0] : unit[1]], dtype=np.float32)
        sims, ids = self.index.search(block, 1)
        return ids[:, 0].astype(np.int32), (1.0 - sims[:, 0]).astype(np.float32)
