"""Selection-quality numbers shared by selectors, manifests and reports."""

from __future__ import annotations

import numpy as np

from curate.pool import Pool
from curate.selectors.stratified import NO_DOMAIN


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
