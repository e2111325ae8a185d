"""A pool of generated records with bring-your-own 384-d vectors (embedding 200k texts on 2 cores
would take hours, REFERENCES.md), shared by the coverage and semdedup benchmarks.

Vectors: a mixture of Gaussian modes on the unit sphere; domain = mode mod 10; a `loss` field in
the record metadata that grows with the distance to the mode (a stand-in proxy-model loss).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl


def vectors(n: int, seed: int, dim: int = 384, modes: int = 50, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, loss): loss = cosine distance to the record's own mode + exponential noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(modes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    mode = rng.integers(0, modes, n)
    x = centres[mode] + (spread / np.sqrt(dim)) * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    loss = 1.0 - (x * centres[mode]).sum(1) + rng.exponential(0.3, n)
    return x, mode, loss.astype(np.float64)


def write_pool_file(path: Path, x: np.ndarray, mode: np.ndarray, loss: np.ndarray) -> None:
    """Parquet with id, text, domain, emb (list<float32>) and a numeric `loss` field."""
    n, dim = x.shape
    emb = pl.Series("emb", x.reshape(-1)).reshape((n, dim)).cast(pl.List(pl.Float32))
    pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": [f"record {i}" for i in range(n)],
            "domain": [f"d{m % 10}" for m in mode],
            "loss": loss,
        }
    ).with_columns(emb).write_parquet(path)


def build(home: Path, x: np.ndarray, mode: np.ndarray, loss: np.ndarray, clusters: int) -> dict:
    """Ingest the generated pool (vectors from the field, faiss k-means); returns the timings."""
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest

    home.mkdir(parents=True, exist_ok=True)
    path = home.parent / "pool.parquet"
    write_pool_file(path, x, mode, loss)
    settings = Settings(home=home)
    start = time.perf_counter()
    report = ingest(
        settings,
        path,
        "bench",
        IngestParams(embedding_field="emb", domain_field="domain", id_field="id", clusters=clusters),
    )
    return {
        "settings": settings,
        "ingest_seconds": round(time.perf_counter() - start, 3),
        "cluster_seconds": report["stages"]["cluster"]["seconds"],
    }
