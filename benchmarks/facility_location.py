"""Facility location (ours vs apricot-select) and tarot (vs random) — prints one JSON object.

FL: n × 384 unit vectors with cluster structure (like sentence embeddings), k picks, both sides on
the same precomputed kernel (cosine clipped at 0; apricot's own "cosine" metric squares it), apricot
JIT-warmed first, median of ``--repeats`` runs each. tarot: the §2.10.5 planted-mode fixture scaled
to ``--tarot-n`` candidates; OT distance to a held-out target sample beside random subsets, wall time
and peak RSS.

    PYTHONPATH=. python benchmarks/facility_location.py [--n 5000 --k 500 --repeats 3 --tarot-n 20000]
    PYTHONPATH=. python benchmarks/facility_location.py --suite fl-sparse   # 50k points, k = 1000, kNN kernel
    PYTHONPATH=. python benchmarks/facility_location.py --suite tarot-scale # 100k × 5k, peak RSS
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np

from curate.algorithms.submodular import FacilityLocation, cosine_kernel, knn_kernel, lazy_greedy
from curate.algorithms.transport import fit_whitener, ot_distance
from curate.selectors.tarot import Neighbours, fixed_size, otm


def embeddings(n: int, d: int = 384, clusters: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 1.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_fl(n: int, k: int, repeats: int) -> dict:
    import apricot

    kernel = cosine_kernel(embeddings(n))  # float64, clipped at 0: the objective both optimise
    apricot.FacilityLocationSelection(5, metric="precomputed", optimizer="lazy").fit(kernel[:200, :200])  # JIT
    ours_t, theirs_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        ours = lazy_greedy(FacilityLocation(kernel), k)
        ours_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = apricot.FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(kernel)
        theirs_t.append(time.perf_counter() - t)
    ours_obj = float(kernel[:, ours.order].max(axis=1).sum())
    theirs_obj = float(kernel[:, theirs.ranking].max(axis=1).sum())
    return {
        "n": n,
        "dim": 384,
        "k": k,
        "ours_s": round(statistics.median(ours_t), 3),
        "apricot_s": round(statistics.median(theirs_t), 3),
        "time_ratio_apricot_over_ours": round(statistics.median(theirs_t) / statistics.median(ours_t), 3),
        "ours_objective": round(ours_obj, 4),
        "apricot_objective": round(theirs_obj, 4),
        "objective_ratio_ours_over_apricot": round(ours_obj / theirs_obj, 6),
        "same_first_50": ours.order[:50].tolist() == list(theirs.ranking[:50]),
    }


def bench_fl_sparse(n: int, k: int, knn: int) -> dict:
    """Beyond ~20k points a dense kernel does not fit (50k → 20 GB): both sides get the same sparse
    kNN kernel (faiss, cosine clipped at 0, symmetrised)."""
    import apricot

    kernel = knn_kernel(embeddings(n, seed=1), knn)
    apricot.FacilityLocationSelection(5, metric="precomputed", optimizer="lazy").fit(kernel[:200][:, :200])  # JIT
    t = time.perf_counter()
    ours = lazy_greedy(FacilityLocation(kernel), k)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    theirs = apricot.FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(kernel)
    theirs_s = time.perf_counter() - t

    def value(order: np.ndarray) -> float:
        return float(np.asarray(kernel[:, order].max(axis=1).todense()).sum())

    return {
        "n": n,
        "k": k,
        "knn": knn,
        "ours_s": round(ours_s, 3),
        "apricot_s": round(theirs_s, 3),
        "time_ratio_apricot_over_ours": round(theirs_s / ours_s, 3),
        "objective_ratio_ours_over_apricot": round(value(ours.order) / value(theirs.ranking), 6),
    }


def bench_tarot_scale(n: int, m: int, k: int, d: int = 384) -> dict:
    """Memory at scale: fixed_size on n candidates × m targets (no ratio estimate), peak RSS; our
    defaults (fresh layers, greedy_f fill re-solving OT per round) timed beside the paper's rules."""
    rng = np.random.default_rng(2)
    centres = 3 * rng.normal(size=(50, d))
    pool = (centres[rng.integers(0, 50, n)] + rng.normal(size=(n, d))).astype(np.float32)
    target = (centres[rng.choice(5, size=m)] + rng.normal(size=(m, d))).astype(np.float32)
    start = time.perf_counter()
    w = fit_whitener([pool, target])
    cand, tgt = w.transform(pool), w.transform(target)
    nbrs = Neighbours.build(cand, tgt, 2000)
    prepare = time.perf_counter() - start
    t_sub = tgt[rng.choice(m, 2000, replace=False)]
    rand = rng.choice(n, 2000, replace=False)
    out = {"candidates": n, "target": m, "dim": d, "k": k, "whiten_knn_s": round(prepare, 2)}
    for rule, layering in (("greedy_f", "fresh"), ("smallest_f", "paper")):  # ours; the paper's
        start = time.perf_counter()
        sel, info = fixed_size(cand, tgt, k, nbrs, rule, layering=layering)
        fill = time.perf_counter() - start
        sub = rng.choice(len(sel), 2000, replace=False)
        out[f"{layering}_layers_{rule}"] = {
            "seconds": round(prepare + fill, 2),
            "fixed_size_s": round(fill, 2),
            "layers_full": info["layers_full"],
            "ot_sample": round(ot_distance(cand[sel[sub]], t_sub), 4),
        }
    out["ot_random_sample"] = round(ot_distance(cand[rand], t_sub), 4)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def bench_tarot(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(10, 16))
    labels = np.repeat(np.arange(10), n // 10)
    pool = centres[labels] + rng.normal(size=(len(labels), 16))

    def target(m: int) -> np.ndarray:
        return centres[rng.choice(3, size=m, p=[0.6, 0.3, 0.1])] + rng.normal(size=(m, 16))

    tgt_raw, held_raw = target(600), target(600)
    start = time.perf_counter()
    w = fit_whitener([pool, tgt_raw])
    cand, tgt, held = w.transform(pool), w.transform(tgt_raw), w.transform(held_raw)
    nbrs = Neighbours.build(cand, tgt, 2000)
    k = 600
    sel, _ = fixed_size(cand, tgt, k, nbrs)
    fixed_s = time.perf_counter() - start
    start = time.perf_counter()
    est = otm(cand, tgt, nbrs)
    otm_s = time.perf_counter() - start
    mean_sim = np.argsort(-(cand @ tgt.mean(axis=0)), kind="stable")[:k]
    randoms = [ot_distance(cand[rng.choice(len(cand), k, replace=False)], held) for _ in range(5)]
    return {
        "candidates": len(cand),
        "target": 600,
        "k": k,
        "ot_heldout_tarot": round(ot_distance(cand[sel], held), 4),
        "ot_heldout_mean_sim": round(ot_distance(cand[mean_sim], held), 4),
        "ot_heldout_random_median": round(statistics.median(randoms), 4),
        "mode_shares_tarot": (np.bincount(labels[sel], minlength=10)[:3] / k).round(3).tolist(),
        "ratio_hat": round(est.ratio, 4),
        "otm_on_target_share": round(float((labels[est.indices] < 3).mean()), 4),
        "fixed_size_s": round(fixed_s, 2),
        "otm_s": round(otm_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tarot-n", type=int, default=20000)
    ap.add_argument("--suite", default="fl,tarot", help="comma list of fl, fl-sparse, tarot, tarot-scale")
    ap.add_argument("--sparse-n", type=int, default=50000)
    ap.add_argument("--sparse-k", type=int, default=1000)
    ap.add_argument("--knn", type=int, default=50)
    args = ap.parse_args()
    suites = set(args.suite.split(","))
    out: dict = {}
    if "fl" in suites:
        out["facility_location"] = bench_fl(args.n, args.k, args.repeats)
    if "fl-sparse" in suites:
        out["facility_location_sparse"] = bench_fl_sparse(args.sparse_n, args.sparse_k, args.knn)
    if "tarot" in suites:
        out["tarot"] = bench_tarot(args.tarot_n)
    if "tarot-scale" in suites:  # run alone for a meaningful peak RSS
        out["tarot_scale"] = bench_tarot_scale(100_000, 5_000, 10_000)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
