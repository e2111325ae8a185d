"""Selection-quality math shared by selectors, manifests and reports; the metrics built on it, each
defined once for manifests and reports alike, are in ``curate.quality``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from curate.pool import Pool
from curate.selectors.stratified import NO_DOMAIN
from curate.stages.ngrams import NgramFeatures


def domain_histogram(pool: Pool, indices: np.ndarray) -> dict[str, int] | None:
    """Selected records per domain (None when the pool has no domain field)."""
    if not pool.has_domain:
        return None
    domains = pool.column("domain").fill_null(NO_DOMAIN).gather(np.asarray(indices, np.int64))
    counts = domains.value_counts().sort("domain")
    return dict(zip(counts["domain"].to_list(), counts["count"].to_list(), strict=True))


def common_metrics(pool: Pool, indices: np.ndarray, clipped: bool) -> dict:
    """What every manifest reports, whatever the selector."""
    out: dict = {
        "selected_fraction": round(len(indices) / pool.n_records, 6) if pool.n_records else 0.0,
        "budget_clipped": clipped,
    }
    hist = domain_histogram(pool, indices)
    if hist is not None:
        out["domain_counts"] = hist
    return out


def selected_totals(feats: NgramFeatures, row_sets: list[np.ndarray]) -> np.ndarray:
    """Summed n-gram counts over each (sorted) set of rows, all sets in one streamed pass."""
    out = np.zeros((len(row_sets), feats.params.num_buckets), np.float64)
    for start, counts in feats.iter_parts():
        stop = start + counts.shape[0]
        rows, cols = [], []
        for i, s in enumerate(row_sets):
            lo, hi = np.searchsorted(s, [start, stop])
            rows.append(np.full(hi - lo, i, np.int64))
            cols.append(np.asarray(s[lo:hi], np.int64) - start)
        pick = sp.csr_matrix(
            (np.ones(sum(map(len, rows))), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(row_sets), counts.shape[0]),
        )
        out += (pick @ counts).toarray()
    return out


def kl_reduction(target: np.ndarray, raw: np.ndarray, selected: np.ndarray, pseudo: float = 1.0) -> float:
    """KL(p̂_target ‖ q̂_raw) − KL(p̂_target ‖ p̂_selected) on bucket counts (DSIR paper's data metric).

    Raw and selected distributions get ``pseudo`` counts per bucket (else any empty bucket makes the
    KL infinite); the target needs none (its zero buckets contribute nothing). Random ≈ 0, higher is
    closer to the target. Compare only at equal selection size and smoothing.
    """
    p = target / target.sum()
    nz = p > 0

    def kl(counts: np.ndarray) -> float:
        q = (counts + pseudo) / (counts.sum() + len(counts) * pseudo)
        return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))

    return kl(raw) - kl(selected)


def mean_nn_distance(
    points: np.ndarray, selected: np.ndarray, queries: np.ndarray | None = None, batch_rows: int = 16_384
) -> float:
    """CCS's coverage AUC_pr (ALGORITHMS.md §3.7): mean Euclidean distance from each query point
    (default: every point) to its nearest selected point; lower = better coverage. Exact faiss search."""
    import faiss

    if len(selected) == 0:
        return float("inf")
    chosen = np.ascontiguousarray(points[np.sort(selected)], dtype=np.float32)
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(chosen)
    rows = np.arange(len(points)) if queries is None else np.asarray(queries, np.int64)
    total = 0.0
    for start in range(0, len(rows), batch_rows):
        block = np.ascontiguousarray(points[rows[start : start + batch_rows]], dtype=np.float32)
        _, nearest = index.search(block, 1)
        # faiss ranks by ‖q‖² + ‖x‖² − 2q·x in float32, which leaves ~1e-3 for a query that is itself
        # selected; the distance to the neighbour it found is recomputed directly, in float64
        diff = block.astype(np.float64) - chosen[nearest[:, 0]].astype(np.float64)
        total += float(np.sqrt(np.einsum("ij,ij->i", diff, diff)).sum())
    return total / max(len(rows), 1)


# --- the registry ------------------------------------------------------------------------------
