"""Two manifests compared by record id: overlap, what each has alone, how the weights of shared
records moved, and how the domain mix shifted. Reads only the two subset files (no pool), so any
two manifests can be compared, even across pools (ids are then matched as given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from curate.manifest import read_manifest
from curate.report.data import pool_domains_of


def diff(a: Path, b: Path) -> dict:
    doc_a, doc_b = read_manifest(a), read_manifest(b)
    fa, fb = pool_domains_of(a), pool_domains_of(b)
    shared = fa.join(fb, on="id", suffix="_b")
    n_a, n_b, n_shared = fa.height, fb.height, shared.height
    union = n_a + n_b - n_shared
    wa, wb = shared["weight"].to_numpy(), shared["weight_b"].to_numpy()
    drift = np.abs(wb - wa)
    weight = {"shared": n_shared}
    if n_shared:
        weight.update(
            mean_abs_change=round(float(drift.mean()), 6),
            max_abs_change=round(float(drift.max()), 6),
            changed=int((drift > 1e-9).sum()),
        )
        if n_shared > 1 and wa.std() > 0 and wb.std() > 0:
            weight["correlation"] = round(float(np.corrcoef(wa, wb)[0, 1]), 6)
    return {
        "a": {"id": doc_a["id"], "selector": doc_a["selector"]["name"], "pool": doc_a["pool"]["id"], "n": n_a},
        "b": {"id": doc_b["id"], "selector": doc_b["selector"]["name"], "pool": doc_b["pool"]["id"], "n": n_b},
        "same_pool": doc_a["pool"]["fingerprint"] == doc_b["pool"]["fingerprint"],
        "jaccard": round(n_shared / union, 6) if union else 1.0,
        "shared": n_shared,
        "only_a": n_a - n_shared,
        "only_b": n_b - n_shared,
        "weight_drift": weight,
        "domain_shift": _domain_shift(fa, fb),
    }


def _domain_shift(fa: pl.DataFrame, fb: pl.DataFrame) -> dict:
    """Per-domain share in each subset (by record count) and the total-variation distance."""
    ca = dict(fa["domain"].value_counts().iter_rows())
    cb = dict(fb["domain"].value_counts().iter_rows())
    names = sorted(set(ca) | set(cb))
    pa = np.array([ca.get(n, 0) for n in names], np.float64) / max(fa.height, 1)
    pb = np.array([cb.get(n, 0) for n in names], np.float64) / max(fb.height, 1)
    return {
        "names": names,
        "a": pa.round(6).tolist(),
        "b": pb.round(6).tolist(),
        "delta": (pb - pa).round(6).tolist(),
        "tv_distance": round(0.5 * float(np.abs(pb - pa).sum()), 6),
    }
