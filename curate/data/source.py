"""Where a training job's rows come from: a static manifest, local or over REST, as one Parquet file
of the subset joined with each record's text and original fields, and how rows split across ranks.

A manifest folder holds only ids and weights (``subset.parquet``); the texts stay in the pool. So
a local source renders the joined file once into the cache (``curate.manifest.text_export``, the
same file the REST download with ``with_text`` streams) and a remote one downloads it once, keyed
by the manifest's full id: manifests are immutable, so a cached copy never goes stale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from curate.errors import InputError


def subset_file(
    manifest: str | Path,
    *,
    home: str | Path | None = None,
    url: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The Parquet file (id, weight, rank, domain, cluster, score, text, original fields) of
    ``manifest``: a folder or id in the local home, or, with ``url``, an id on a curate server."""
    from curate.config import get_settings

    settings = get_settings(Path(home) if home else None)
    if url is None:
        from curate.manifest import locate, text_export

        return text_export(settings, locate(settings, str(manifest)))
    from curate.client import CurateClient

    with CurateClient(url, token=token) as client:
        full_id = client.manifest(str(manifest))["id"]
        dest = Path(cache_dir or settings.cache_dir / "downloads") / full_id / "subset-text.parquet"
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download(full_id, dest, format="parquet", with_text=True)
    return dest


def shard_rows(n: int, rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1) -> np.ndarray:
    """Rows of data-parallel ``rank`` (and of its loader ``worker``): every ``world_size ×
    num_workers``-th row, so shards are disjoint, together cover every row, and differ in size by at
    most one whatever the manifest's rank order (high-weight rows are not piled onto rank 0)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank must be in [0, world_size), got rank {rank} of {world_size}", field="rank")
    if num_workers < 1 or not 0 <= worker < num_workers:
        raise InputError(f"worker must be in [0, num_workers), got {worker} of {num_workers}", field="worker")
    return np.arange(rank * num_workers + worker, n, world_size * num_workers, dtype=np.int64)


def read_weights(path: Path) -> np.ndarray:
    """The weight column alone (8 bytes a row): what sampling needs before any text is read."""
    return pq.read_table(path, columns=["weight"])["weight"].to_numpy().astype(np.float64)


def weighted_draw(weights: np.ndarray, rows: np.ndarray, num_samples: int, seed: list[int], replacement: bool):
    """``num_samples`` of ``rows`` drawn with probability ∝ weight: with replacement (multinomial,
    what weighted sampling means for a mean-1 weight) or, without, by Gumbel top-k."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    w = weights[rows]
    if w.sum() <= 0 or len(rows) == 0:
        return rows[:0]
    if replacement:
        return rows[rng.choice(len(rows), size=num_samples, replace=True, p=w / w.sum())]
    keys = np.where(w > 0, np.log(np.maximum(w, 1e-300)) + rng.gumbel(size=len(rows)), -np.inf)
    order = np.argsort(-keys, kind="stable")[: min(num_samples, int((w > 0).sum()))]
    return rows[order]
