"""Proportional stratified sampling by domain or cluster: random, but no stratum over- or under-drawn."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from curate.errors import InputError
from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register

NO_DOMAIN = "(none)"


class StratifiedParams(SelectorParams):
    by: Literal["auto", "domain", "cluster"] = Field(
        "auto", description="Strata: the domain column, the k-means clusters, or auto (domain if present)."
    )


def largest_remainder(sizes: np.ndarray, k: int) -> np.ndarray:
    """Integer quotas ∝ ``sizes`` summing to ``k``; leftovers go to the largest fractional parts
    (ties to the earlier stratum), and no quota exceeds its stratum."""
    exact = sizes * (k / sizes.sum())
    quota = np.floor(exact).astype(np.int64)
    left = k - int(quota.sum())
    if left:
        order = np.lexsort((np.arange(len(sizes)), -(exact - quota)))
        quota[order[:left]] += 1
    return np.minimum(quota, sizes)


def strata_labels(ctx: SelectionContext, by: str) -> tuple[np.ndarray, list[str]]:
    """(stratum code per record, stratum names) for the pool."""
    pool = ctx.pool
    if by == "auto":
        by = "domain" if pool.has_domain else "cluster"
    if by == "domain":
        if not pool.has_domain:
            raise InputError(f"pool '{pool.name}' has no domain field; use by=cluster", field="by")
        domains = pool.column("domain").fill_null(NO_DOMAIN)
        names = sorted(domains.unique().to_list())
        codes = domains.replace_strict(names, list(range(len(names))), return_dtype=None).to_numpy()
        return codes.astype(np.int64), names
    clusters = np.asarray(pool.clusters(), dtype=np.int64)
    present = np.unique(clusters)
    return np.searchsorted(present, clusters), [str(c) for c in present]


@register
class StratifiedSelector(Selector):
    name = "stratified"
    description = "Random sample with per-stratum quotas proportional to stratum size (largest remainder)."
    Params = StratifiedParams

    def select(self, ctx: SelectionContext) -> Selection:
        codes, names = strata_labels(ctx, self.params.by)
        sizes = np.bincount(codes, minlength=len(names))
        quota = largest_remainder(sizes, ctx.budget)
        # One random key per record; sorting by (stratum, key) makes each stratum a random permutation.
        keys = ctx.rng(0).random(len(codes))
        order = np.lexsort((keys, codes))
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        position = np.arange(len(order)) - np.repeat(starts, sizes)
        chosen = order[position < np.repeat(quota, sizes)]
        chosen = chosen[ctx.rng(1).permutation(len(chosen))]  # rank order: any prefix is a random subsample
        total = max(int(quota.sum()), 1)
        mixture = {names[i]: float(quota[i] / total) for i in np.flatnonzero(quota)}
        pool_share = sizes / max(sizes.sum(), 1)
        deviation = float(np.max(np.abs(quota / total - pool_share))) if ctx.budget else 0.0
        return Selection(
            indices=chosen.astype(np.int64),
            mixture=mixture,
            metrics={"strata": len(names), "max_share_deviation": round(deviation, 6)},
        )
