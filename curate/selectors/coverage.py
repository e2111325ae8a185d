"""Coverage-centric coreset selection, CCS (Zheng et al., ICLR 2023; ALGORITHMS.md §3).

Keeping only the hardest records collapses at high pruning rates: they cover the data poorly. CCS
drops the hardest fraction β (likely noise), cuts the remaining score range into equal-width strata,
spreads the budget over strata from the smallest up (water-filling) and samples uniformly inside
each. Difficulty comes from a user column, from prototypicality (distance to the k-means centroid),
or from an EL2N-like error of a cross-validated linear probe on embeddings against the domain.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.errors import InputError
from curate.pool import Pool
from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register
from curate.selectors.stratified import NO_DOMAIN

# β by pruning rate, chosen by the real-text sweep (docs/coverage.md: 10 Debian sections, el2n_probe,
# probe accuracy, 5 seeds): β = 0.1 best at 70 % (+1.5 pp over random), 0.2 best at 90 % (+1.4 pp);
# β = 0 loses 4-7 pp from 90 % up. Larger β at higher pruning as in the paper (0.3 at 90 % on CIFAR),
# but smaller: short text has fewer mislabeled records to cut. Below 70 % nothing was measured to
# beat β = 0 (the paper's low-pruning regime, where CCS ≈ random anyway).
BETA_SCHEDULE = ((0.7, 0.0), (0.85, 0.1), (1.01, 0.2))  # (pruning rate below, β)


class CoverageParams(SelectorParams):
    score: Literal["auto", "prototypicality", "el2n_probe", "column"] = Field(
        "auto",
        description="Difficulty: distance to own k-means centroid, a cross-validated probe's error "
        "norm vs the domain, or a numeric field of the records (score_column). auto: el2n_probe when "
        "the pool has two or more domains, else prototypicality (docs/coverage.md).",
    )
    score_column: str | None = Field(
        None, description="Numeric record field (e.g. a proxy loss); implies score=column."
    )
    hard: Literal["high", "low"] = Field("high", description="Which end of the score is hard (AUM: low).")
    beta: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Hardest fraction of the pool dropped first; default by pruning rate "
        "(0 below 70 %, 0.1 from 70 %, 0.2 from 85 %).",
    )
    num_strata: int = Field(50, ge=1, description="Equal-width score strata (paper: 50).")
    binning: Literal["equal_width", "quantile"] = Field("equal_width", description="quantile ≈ random (ablation).")
    compat: Literal["none", "reference"] = Field(
        "none", description="reference keeps the upper edge 1.0001·max, which drops the max when max ≤ 0."
    )
    probe_folds: int = Field(5, ge=2, description="Cross-validation folds of the el2n probe.")
    probe_c: float = Field(1.0, gt=0, description="Inverse L2 strength of the el2n probe.")

    @model_validator(mode="after")
    def _column_implies_score(self) -> CoverageParams:
        if self.score_column and self.score != "column":
            self.score = "column"
        if self.score == "column" and not self.score_column:
            raise ValueError("score=column needs score_column")
        return self


def default_beta(pruning_rate: float) -> float:
    return next(beta for below, beta in BETA_SCHEDULE if pruning_rate < below)


def water_fill(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Per-stratum budgets: strata visited smallest first, each gets min(size, ⌊left / strata left⌋);
    small strata are taken whole and their share flows to larger ones (the reference's bin_allocate)."""
    sizes = np.asarray(sizes, np.int64)
    out = np.zeros(len(sizes), np.int64)
    left = min(int(budget), int(sizes.sum()))
    order = np.argsort(sizes, kind="stable")
    for i, s in enumerate(order):  # one step per stratum (≤ num_strata), not per record
        out[s] = min(int(sizes[s]), left // (len(order) - i))
        left -= int(out[s])
    return out


@dataclass
class CcsResult:
    chosen: np.ndarray  # row ids, random rank order
    cut: np.ndarray  # row ids dropped by the hard cutoff
    sizes: np.ndarray  # records per stratum after the cutoff
    budgets: np.ndarray  # drawn per stratum
    edges: tuple[float, float]


def ccs_select(
    scores: np.ndarray,
    budget: int,
    beta: float,
    num_strata: int,
    rng: np.random.Generator,
    hard: str = "high",
    binning: str = "equal_width",
    compat: str = "none",
) -> CcsResult:
    """CCS on a score vector (row id = position): cutoff, strata, water-filling, uniform draws."""
    s = np.asarray(scores, np.float64)
    n = len(s)
    rows = np.arange(n, dtype=np.int64)
    n_cut = int(beta * n)
    hardest_first = np.lexsort((rows, -s if hard == "high" else s))  # ties: smaller row id is cut first
    cut, kept = np.sort(hardest_first[:n_cut]), np.sort(hardest_first[n_cut:])
    if len(kept) == 0:
        return CcsResult(
            np.empty(0, np.int64), cut, np.zeros(num_strata, np.int64), np.zeros(num_strata, np.int64), (0, 0)
        )
    v = s[kept]
    lo, top = float(v.min()), float(v.max())
    if binning == "quantile":
        bins = (np.argsort(np.argsort(v, kind="stable"), kind="stable") * num_strata) // len(v)
        hi = top
    else:
        hi = 1.0001 * top if compat == "reference" else top + 1e-4 * max(top - lo, 1.0)
        width = (hi - lo) / num_strata
        bins = np.floor((v - lo) / width).astype(np.int64) if width > 0 else np.zeros(len(v), np.int64)
        if compat == "reference":  # the reference's right edge can exclude the maximum (pitfall §3.9.1)
            inside = (bins >= 0) & (bins < num_strata) & (v < hi)
            kept, v, bins = kept[inside], v[inside], bins[inside]
        bins = np.clip(bins, 0, num_strata - 1)
    sizes = np.bincount(bins, minlength=num_strata)
    budgets = water_fill(sizes, budget)
    order = np.lexsort((rng.random(len(kept)), bins))  # a random permutation inside each stratum
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.arange(len(order)) - np.repeat(starts, sizes)
    chosen = kept[order[position < np.repeat(budgets, sizes)]]
    return CcsResult(chosen[rng.permutation(len(chosen))], cut, sizes, budgets, (lo, hi))


def column_scores(pool: Pool, name: str) -> np.ndarray:
    """A numeric field of the records' ``meta`` JSON, decoded by polars; missing values are an error."""
    path = "$['" + name.replace("'", "\\'") + "']"
    values = (
        pool.scan()
        .select("id", pl.col("meta").str.json_path_match(path).cast(pl.Float64, strict=False).alias("v"))
        .collect()
    )
    bad = values.filter(pl.col("v").is_null() | pl.col("v").is_nan() | pl.col("v").is_infinite())
    if bad.height:
        raise InputError(
            f"score column missing or not a finite number in {bad.height} of {values.height} records "
            f"(first: id {bad['id'][0]!r})",
            field=name,
        )
    return values["v"].to_numpy()


def el2n_probe_scores(x: np.ndarray, labels: np.ndarray, folds: int, c: float, seed: int) -> np.ndarray:
    """‖onehot(y) − p(x)‖₂ with p from a logistic-regression probe that never saw x (k-fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise InputError("el2n_probe needs at least two domains", field="score")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # tiny domains: sklearn warns that a fold lacks them; p is still valid
        warnings.simplefilter("ignore")
        probs = cross_val_predict(LogisticRegression(C=c, max_iter=500), x, y, cv=cv, method="predict_proba")
    probs[np.arange(len(y)), y] -= 1.0
    return np.linalg.norm(probs, axis=1)


@register
class CoverageSelector(Selector):
    name = "coverage"
    version = "2"  # 2: score auto (el2n_probe on labelled pools), β schedule from the real-text sweep
    description = "Coverage-centric coreset (CCS): drop the hardest β, spread the budget over score strata."
    Params = CoverageParams

    def score_name(self, pool: Pool) -> str:
        """The score ``auto`` stands for on this pool: a label-aware error (what the paper's
        training-dynamics scores are) when there are labels to be wrong about, else prototypicality."""
        if self.params.score != "auto":
            return self.params.score
        if pool.has_domain and pool.column("domain").drop_nulls().n_unique() >= 2:
            return "el2n_probe"
        return "prototypicality"

    def scores(self, ctx: SelectionContext, name: str) -> np.ndarray:
        p, pool = self.params, ctx.pool
        if name == "column":
            return column_scores(pool, p.score_column)
        if name == "prototypicality":
            return np.asarray(pool.cluster_distance(), np.float64)
        if not pool.has_domain:
            raise InputError(f"pool '{pool.name}' has no domain field for el2n_probe", field="score")
        labels = pool.column("domain").fill_null(NO_DOMAIN).to_numpy()
        seed = int(ctx.rng(2).integers(2**31))
        return el2n_probe_scores(np.asarray(pool.embeddings()), labels, p.probe_folds, p.probe_c, seed)

    def select(self, ctx: SelectionContext) -> Selection:
        p, n = self.params, ctx.pool.n_records
        ctx.progress(0.0, "scores")
        score = self.score_name(ctx.pool)
        s = self.scores(ctx, score)
        pruning = 1.0 - ctx.budget / n if n else 0.0
        beta = p.beta if p.beta is not None else default_beta(pruning)
        res = ccs_select(s, ctx.budget, beta, p.num_strata, ctx.rng(0), p.hard, p.binning, p.compat)
        metrics = {
            "score": score,
            "beta": beta,
            "pruning_rate": round(pruning, 6),
            "cut": len(res.cut),
            "stratum_sizes": res.sizes.tolist(),
            "stratum_counts": res.budgets.tolist(),
            "score_range": [round(res.edges[0], 6), round(res.edges[1], 6)],
            "budget_clipped": len(res.chosen) < ctx.budget,
        }
        # coverage vs random is computed for every selection by curate.quality (one definition)
        return Selection(indices=res.chosen, scores=s[res.chosen], metrics=metrics)
