"""CCS (`coverage` selector) on a generated 384-d pool: records/s beside `random`, and the coverage
metric (mean distance from 5,000 pool records to the nearest selected one, lower = better) for CCS
at several β, random and hardest-first, all on the same query sample. One JSON object out.

    python benchmarks/ccs_coverage.py --records 200000

(Not named coverage.py: from benchmarks/ that would shadow the `coverage` package numba imports.)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--fraction", type=float, default=0.1, help="Budget (0.1 = 90 %% pruning).")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from curate.metrics import mean_nn_distance
    from curate.pool import Pool
    from curate.select import run_selection

    x, mode, loss = vectors(args.records, args.seed)
    built = build(Path(tempfile.mkdtemp(prefix="bench-ccs-")) / "home", x, mode, loss, args.clusters)
    settings = built["settings"]
    pool = Pool.load(settings, "bench")
    emb = pool.embeddings()
    k = int(args.fraction * args.records)
    queries = np.sort(np.random.default_rng(args.seed + 7).choice(args.records, 5000, replace=False))
    row_of = {f"r{i}": i for i in range(args.records)}

    def run(selector: str, params: dict) -> dict:
        import polars as pl

        start = time.perf_counter()
        doc = run_selection(settings, pool="bench", selector=selector, budget=k, params=params, seed=args.seed)
        seconds = time.perf_counter() - start
        rows = pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"].replace_strict(row_of).to_numpy()
        return {
            "seconds": round(seconds, 3),
            "records_per_s": round(args.records / seconds, 1),
            "coverage": round(mean_nn_distance(emb, rows, queries), 5),
        }

    out: dict = {"benchmark": "coverage", "records": args.records, "selected": k, "dim": int(emb.shape[1])}
    out["random"] = run("random", {})
    out["ccs_prototypicality"] = run("coverage", {"score": "prototypicality"})
    out["ccs_loss_beta_sweep"] = {
        str(b): run("coverage", {"score_column": "loss", "beta": b}) for b in (0.0, 0.1, 0.3)
    }
    hardest = np.argsort(-loss, kind="stable")[:k]
    out["hardest_first_loss"] = {"coverage": round(mean_nn_distance(emb, hardest, queries), 5)}
    out["easiest_first_loss"] = {"coverage": round(mean_nn_distance(emb, np.argsort(loss)[:k], queries), 5)}
    out["coverage_metric"] = "mean L2 distance from 5,000 pool records to the nearest selected record"
    out["ingest_seconds"] = built["ingest_seconds"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
