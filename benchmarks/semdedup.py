"""Semantic dedup on a generated 384-d pool with planted near-duplicates, one JSON object out.

Ours (faiss range search inside each k-means cluster) beside the SemDeDup reference's approach on
the same clusters (a dense per-cluster similarity matrix, max over earlier members), both with the
`any_earlier` rule in row order so their outputs must agree; plus ours with its defaults (kept rule,
nearest-the-centroid survives) and the planted-pair recall / false removals.

    python benchmarks/semdedup.py --records 200000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.synthetic_pool import build, vectors  # noqa: E402


def dense_reference(x: np.ndarray, assign: np.ndarray, eps: float) -> np.ndarray:
    """Removed mask, SemDeDup style: per cluster, M = triu(X Xᵀ, 1); removed iff max over column > 1 − eps."""
    removed = np.zeros(len(assign), bool)
    for c in np.unique(assign):
        rows = np.flatnonzero(assign == c)
        xc = np.ascontiguousarray(x[rows], dtype=np.float32)
        sims = np.triu(xc @ xc.T, k=1)
        removed[rows] = sims.max(axis=0) > 1.0 - eps
    return removed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--duplicates", type=float, default=0.1, help="Fraction of records that are planted copies.")
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from curate.dedup import run_dedup
    from curate.pool import Pool
    from curate.stages.semdedup import SemDedupParams, SemDedupStage

    n_dup = int(args.duplicates * args.records)
    x, mode, loss = vectors(args.records - n_dup, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    source = rng.choice(len(x), n_dup, replace=False)
    copies = x[source] + (0.15 / np.sqrt(x.shape[1])) * rng.normal(size=(n_dup, x.shape[1])).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)  # cosine ≈ 0.99 to its source
    x, mode, loss = np.vstack([x, copies]), np.concatenate([mode, mode[source]]), np.concatenate([loss, loss[source]])
    built = build(Path(tempfile.mkdtemp(prefix="bench-dedup-")) / "home", x, mode, loss, args.clusters)
    settings = built["settings"]
    pool = Pool.load(settings, "bench")
    emb, assign = pool.embeddings(), np.asarray(pool.clusters())

    def timed(params: dict) -> tuple[float, np.ndarray]:
        """Seconds of the stage alone (like the reference's), then the kept set from the manifest."""
        import polars as pl

        stage = SemDedupStage(SemDedupParams(**params), pool.feature_path("embed"), pool.feature_path("cluster"))
        start = time.perf_counter()
        stage.run(pool)
        seconds = time.perf_counter() - start
        doc = run_dedup(settings, pool="bench", params=params)  # reuses the cached stage output
        kept = pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"].str.slice(1).cast(pl.Int64).to_numpy()
        mask = np.ones(args.records, bool)
        mask[kept] = False
        return seconds, mask

    ours_s, ours_removed = timed({"eps": args.eps, "keep": "first", "criterion": "any_earlier"})
    start = time.perf_counter()
    ref_removed = dense_reference(emb, assign, args.eps)
    ref_s = time.perf_counter() - start
    default_s, default_removed = timed({"eps": args.eps})
    base = args.records - n_dup
    pair_kept = ~default_removed[source] ^ ~default_removed[base:]  # exactly one of (source, copy) survives
    planted = np.zeros(args.records, bool)
    planted[source] = True
    planted[base:] = True
    print(
        json.dumps(
            {
                "benchmark": "semdedup",
                "records": args.records,
                "planted_copies": n_dup,
                "clusters": args.clusters,
                "eps": args.eps,
                "ours_any_earlier": {"seconds": round(ours_s, 3), "records_per_s": round(args.records / ours_s, 1)},
                "dense_per_cluster_reference": {
                    "seconds": round(ref_s, 3),
                    "records_per_s": round(args.records / ref_s, 1),
                },
                "speedup": round(ref_s / ours_s, 2),
                "removed_sets_identical": bool(np.array_equal(ours_removed, ref_removed)),
                "ours_default": {
                    "seconds": round(default_s, 3),
                    "records_per_s": round(args.records / default_s, 1),
                    "removed": int(default_removed.sum()),
                    "planted_pairs_with_exactly_one_kept": round(float(pair_kept.mean()), 4),
                    "false_removals": int((default_removed & ~planted).sum()),
                },
                "seconds_include": "the stage (ours: search + rule + write); similarity + max (reference)",
                "ingest_seconds": built["ingest_seconds"],
            }
        )
    )


if __name__ == "__main__":
    main()
