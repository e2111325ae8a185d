"""TAROT: targeted selection by optimal transport on whitened features (Feng et al., ICML 2025).

Why not "nearest to the target mean": when the target has several modes, a mean-similarity ranking
spends the whole budget on the dominant one. TAROT grows the selection through *layers* — the r-th
nearest candidate of every target example — so each target example pulls in its own neighbours,
and uses the OT distance to the target to fill the last layer (``fixed_size``) or to decide when
adding more stops helping (``otm``), which estimates the optimal selection size (budget ``auto``).
ALGORITHMS.md §2; ``compat="reference"`` reproduces the reference code's choices (§2.9).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from curate.algorithms.transport import (
    chord_cost,
    fit_whitener,
    knn_search,
    ot_distance,
    ot_potentials,
    transported_mass,
)
from curate.errors import InputError
from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register
from curate.selectors.tarot_whitening import DEFAULT_GRID, choose_whitening


class TarotParams(SelectorParams):
    mode: Literal["auto", "fixed_size", "otm"] = Field(
        "auto",
        description="fixed_size fills the budget (Alg. 1); otm sizes itself (Alg. 2); auto: otm iff budget=auto.",
    )
    compat: Literal["none", "reference"] = Field(
        "none", description="reference: the reference code's ridge, fill rule, stop rule and no weights."
    )
    whitening: Literal["cholesky", "zca", "none"] = Field("cholesky", description="none = unwhitened ablation.")
    shrinkage: float | Literal["auto", "cv"] | None = Field(
        None,
        description="Covariance shrinkage toward identity (1 = centring only, unwhitened); auto = Ledoit-Wolf; "
        "cv (default): chosen from Ledoit-Wolf and shrinkage_grid on held-out target folds; reference: 0.",
    )
    shrinkage_grid: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        list(DEFAULT_GRID), min_length=1, description="cv: shrinkages tried besides Ledoit-Wolf's (each in [0, 1])."
    )
    ridge: float | None = Field(None, ge=0, description="Added to the covariance diagonal (reference: 1e-5 absolute).")
    max_neighbors: int = Field(2000, ge=1, description="K_max: neighbours per target example = layer depth cap.")
    sim_threshold: float = Field(0.0, description="otm: neighbours need whitened cosine above this.")
    k_fold_splits: int = Field(10, ge=2, description="otm folds of the target (held-out guard).")
    otm_target_sample: int | None = Field(
        2000, ge=10, description="otm: measure OT to at most this many of H_f's records (None = all, as reference)."
    )
    otm_set_sample: int | None = Field(
        1000,
        ge=10,
        description="otm: measure OT from at most this many of a fold's neighbour set (a fixed random priority "
        "per record, so the sets of consecutive depths share their samples; None = all, as reference).",
    )
    fold_seed: int = Field(42, description="Seed of the target fold split (reference: 42).")
    stop_rule: Literal["argmin", "reference"] | None = Field(
        None, description="otm: keep the best set (argmin, default) or one step past it (reference)."
    )
    search: Literal["exponential", "linear"] | None = Field(
        None, description="otm: step-by-step scan (default, the paper's) or doubling + bisection (unimodal curves)."
    )
    overflow_rule: Literal["greedy_f", "smallest_f", "largest_f", "random"] | None = Field(
        None,
        description="fixed_size last layer: greedy_f (default) adds the smallest potentials w.r.t. what is already "
        "selected, in rounds; smallest_f: potentials of the layer alone; reference: largest_f.",
    )
    fill_rounds: int = Field(16, ge=1, description="greedy_f: OT re-solves while filling the last layer.")
    layering: Literal["fresh", "paper"] | None = Field(
        None,
        description="fixed_size layer r: each target example's nearest neighbour not yet selected (fresh, default) "
        "or its r-th neighbour, taken or not (paper, reference).",
    )
    ot_backend: Literal["auto", "emd", "sinkhorn_log"] = Field("auto", description="auto: exact EMD while small.")
    ot_reg: float = Field(1e-3, gt=0, description="Entropic regularisation of sinkhorn_log.")
    weighting: Literal["mass", "uniform"] | None = Field(
        None, description="mass: target mass transported to each record (default); reference: uniform."
    )
    weight_temperature: float = Field(
        0.5, gt=0, description="Soft-min temperature of the mass weights (chord-cost units; small = nearest only)."
    )
    estimate_ratio: bool = Field(True, description="Also run otm in fixed_size mode to report ratio_hat.")
    metric_sample: int = Field(2000, ge=10, description="Points per side for the reported OT distances.")

    def resolved(self) -> dict:
        ref = self.compat == "reference"
        return {
            "shrinkage": self.shrinkage if self.shrinkage is not None else (0.0 if ref else "cv"),
            "ridge": self.ridge if self.ridge is not None else (1e-5 if ref else 1e-6),
            "relative_ridge": not ref,
            "stop_rule": self.stop_rule or ("reference" if ref else "argmin"),
            "search": self.search or "linear",
            "overflow_rule": self.overflow_rule or ("largest_f" if ref else "greedy_f"),
            "weighting": self.weighting or ("uniform" if ref else "mass"),
            "layering": self.layering or ("paper" if ref else "fresh"),
        }


@dataclass
class Neighbours:
    """Per target example, candidate ids by whitened cosine, descending (the reference's R_j)."""

    ids: np.ndarray  # (M, K) int64
    sims: np.ndarray  # (M, K) float32
    _first: dict = field(default_factory=dict, repr=False, compare=False)  # n → first_layer's (read-only) arrays

    @classmethod
    def build(cls, cand: np.ndarray, tgt: np.ndarray, k: int) -> Neighbours:
        sims, ids = knn_search(cand, tgt, k)
        return cls(ids, sims)

    def fresh_layers(self, n: int, k: int) -> np.ndarray:
        """Layer of each candidate when layer r takes every target example's nearest neighbour not
        already selected — up to the first layer that overflows ``k`` (later ones stay at K).

        Why not the paper's r-th neighbour: where target examples are dense their neighbour lists
        overlap, so a deep layer adds few *new* records there, and the dense mode's share falls with
        depth (on §2.10.5 at k = 4000: 46/35/19 % for a 60/30/10 target; fresh layers: 50/34/12).
        """
        depth, m = self.ids.shape[1], len(self.ids)
        first = np.full(n, depth, np.int64)
        in_u = np.zeros(n, bool)
        ptr = np.zeros(m, np.int64)
        rows = np.arange(m)
        total = 0
        for r in range(depth):
            while True:
                live = rows[ptr < depth]
                cur = self.ids[live, ptr[live]]
                hit = (cur < 0) | in_u[np.maximum(cur, 0)]
                if not hit.any():
                    break
                ptr[live[hit]] += 1
            live = rows[ptr < depth]
            if not len(live):
                break
            layer = np.unique(self.ids[live, ptr[live]])
            first[layer] = r
            total += len(layer)
            if total > k:
                break
            in_u[layer] = True
            ptr[live] += 1
        return first

    def first_layer(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(first layer each candidate appears in — K if never, its best similarity to any target).
        Computed once (two scatter passes over M·K entries); fixed_size and the selector both read it."""
        if n not in self._first:
            depth = self.ids.shape[1]
            first = np.full(n, depth, np.int64)
            np.minimum.at(first, self.ids.ravel(), np.tile(np.arange(depth), len(self.ids)))
            best = np.full(n, -np.inf, np.float32)
            np.maximum.at(best, self.ids.ravel(), self.sims.ravel())
            self._first[n] = (first, best)
        return self._first[n]


def fixed_size(
    cand: np.ndarray,
    tgt: np.ndarray,
    k: int,
    nbrs: Neighbours,
    overflow_rule: str = "greedy_f",
    rng: np.random.Generator | None = None,
    backend: str = "auto",
    reg: float = 1e-3,
    rounds: int = 16,
    layering: str = "fresh",
) -> tuple[np.ndarray, dict]:
    """Algorithm 1: union whole layers while they fit; fill the overflowing layer by OT potential.
    ``layering="paper"`` forms layer r from every target example's r-th neighbour, as the paper.

    Returned in rank order: by layer, then by similarity to the nearest target example (the filled
    part of the last layer in fill order).
    """
    n = len(cand)
    first, best = nbrs.first_layer(n)
    depth = nbrs.ids.shape[1]
    reachable = int((first < depth).sum())
    if layering == "fresh":
        first = nbrs.fresh_layers(n, k)
    per_layer = np.bincount(first[first < depth], minlength=depth)
    filled = np.cumsum(per_layer)
    over = np.flatnonzero(filled > k)
    stop = int(over[0]) if len(over) else depth
    taken = np.flatnonzero(first < stop)
    taken = taken[np.lexsort((taken, -best[taken], first[taken]))]
    info = {"layers_full": stop, "reachable": reachable}
    if not len(over) or len(taken) == k:
        return taken, info
    delta = np.flatnonzero(first == stop)
    need = k - len(taken)
    rng = rng or np.random.default_rng(0)
    if overflow_rule == "greedy_f":
        return np.concatenate([taken, greedy_fill(cand, tgt, taken, delta, need, rounds, rng, backend, reg)]), info
    if overflow_rule == "random":
        rank = rng.permutation(len(delta))
    else:
        _, f, _ = ot_potentials(cand[delta], tgt, backend, reg)
        key = f if overflow_rule == "smallest_f" else -f
        rank = np.lexsort((delta, key))
    return np.concatenate([taken, delta[rank[:need]]]), info


def greedy_fill(
    cand: np.ndarray,
    tgt: np.ndarray,
    taken: np.ndarray,
    delta: np.ndarray,
    need: int,
    rounds: int,
    rng: np.random.Generator,
    backend: str = "auto",
    reg: float = 1e-3,
    sample: int = 1000,
) -> np.ndarray:
    """The ``need`` members of the overflowing layer ``delta`` that lower OT to the target most,
    chosen in ``rounds`` batches.

    Why not the potentials of ``delta`` alone (the paper's rule, ``smallest_f``): they ignore what
    the full layers already hold, so the fill piles onto the target's dominant mode, which the full
    layers serve already. Here each batch takes the smallest c-transform potentials
    f_i = min_j (C_ij − g_j) of the current selection's OT problem: g_j is large at target examples
    the selection serves poorly, and f_i is the first-order change in OT from adding candidate i.
    Each round solves OT on at most ``sample`` points per side (exact EMD, ≈ 0.2 s at 1000).
    """
    t = tgt[_subsample(len(tgt), sample, rng)]
    cost = chord_cost(cand[delta], t)
    picked = np.zeros(0, np.int64)
    left = np.ones(len(delta), bool)
    per_round = -(-need // rounds)
    while len(picked) < need:
        current = np.concatenate([taken, delta[picked]])
        if len(current):
            current = current[_subsample(len(current), sample, rng)]
            _, _, g = ot_potentials(cand[current], t, backend, reg)
            f = (cost - g[None, :]).min(axis=1)
        else:  # nothing selected yet: the layer's own potentials
            _, f, _ = ot_potentials(cand[delta], t, backend, reg)
        open_ = np.flatnonzero(left)
        order = open_[np.lexsort((delta[open_], f[open_]))][: min(per_round, need - len(picked))]
        left[order] = False
        picked = np.concatenate([picked, order])
    return delta[picked]


def _fold_curve_set(nbrs: Neighbours, fold: np.ndarray, k: int, threshold: float) -> np.ndarray:
    ids, sims = nbrs.ids[fold, :k], nbrs.sims[fold, :k]
    return np.unique(ids[(sims > threshold) & (ids >= 0)])


@dataclass
class OtmResult:
    indices: np.ndarray
    ratio: float
    folds: list[dict] = field(default_factory=list)


def otm(
    cand: np.ndarray,
    tgt: np.ndarray,
    nbrs: Neighbours,
    k_folds: int = 10,
    fold_seed: int = 42,
    threshold: float = 0.0,
    stop_rule: str = "argmin",
    search: str = "linear",
    backend: str = "auto",
    reg: float = 1e-3,
    target_sample: int | None = None,
    set_sample: int | None = None,
) -> OtmResult:
    """Algorithm 2: per target fold, grow the neighbour set of the held-out part V_f while its OT
    distance to the rest H_f falls; the union over folds is the selection, |S|/N the ratio estimate.

    ``search="exponential"`` finds the first non-improving depth by doubling then bisection — the
    same answer as the linear scan only when the curve is unimodal; real curves are noisy near the
    minimum (on the §2.10 fixture it stopped deeper and cost more), so the linear scan is default.
    """
    from sklearn.model_selection import KFold

    k_folds = min(k_folds, len(tgt))
    depth = nbrs.ids.shape[1]
    splits = KFold(k_folds, shuffle=True, random_state=fold_seed).split(np.arange(len(tgt)))
    sampler = np.random.default_rng(fold_seed)
    # Why a set sample: on a 1M pool the folds' curves run 40–70 layers deep and each neighbour set
    # reaches ~12k records, so every step of the scan was a 12k × 2k exact transport problem (38 min
    # in all). The priorities are fixed per record, so the sample at depth k is the sample at k − 1
    # plus the new records that outrank its members, so consecutive costs share most of their points.
    # It measures at a fixed sample size, so the curve stops earlier than the exact one (docs/tarot.md:
    # ratio_hat 0.071 vs 0.105 at 100k). The returned set is always the whole neighbour set.
    priority = np.random.default_rng(fold_seed).random(len(cand)) if set_sample is not None else None
    plan = []  # drawn in fold order before any fold runs, so the answer never depends on scheduling
    for rest, held in splits:
        if target_sample is not None and len(rest) > target_sample:  # §2.8 (e): bounded OT problems
            rest = np.sort(sampler.choice(rest, target_sample, replace=False))
        plan.append((rest, held))

    def run_fold(f: int) -> tuple[np.ndarray, dict]:
        rest, held = plan[f]
        cache: dict[int, float] = {}

        def cost(k: int) -> float:
            if k not in cache:
                sel = _fold_curve_set(nbrs, held, k, threshold)
                if priority is not None and len(sel) > set_sample:
                    sel = np.sort(sel[np.argsort(priority[sel], kind="stable")[:set_sample]])
                cache[k] = ot_distance(cand[sel], tgt[rest], backend, reg) if len(sel) else np.inf
            return cache[k]

        def worse(k: int) -> bool:  # the reference stops at the first k where this holds
            return cost(k) >= cost(k - 1)

        stop = None
        if search == "linear":
            stop = next((k for k in range(2, depth) if worse(k)), None)
        else:
            lo, k = 1, 2
            while k < depth:
                if worse(k):
                    hi = k
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        lo, hi = (lo, mid) if worse(mid) else (mid, hi)
                    stop = hi
                    break
                lo, k = k, (min(2 * k, depth - 1) if k < depth - 1 else depth)
        last = stop if stop is not None else max(depth - 1, 1)  # never worse: the reference ends at K_max−1
        keep = last - 1 if stop is not None and stop_rule == "argmin" else last
        sel = _fold_curve_set(nbrs, held, keep, threshold)
        if not len(sel):
            return sel, {"fold": f, "stop": None, "size": 0, "skipped": "no neighbour above sim_threshold"}
        return sel, {"fold": f, "stop": keep, "size": int(len(sel)), "ot": round(float(cost(keep)), 6)}

    # Folds are independent and the exact solver releases the GIL: one thread per core (≈ 2× here).
    with ThreadPoolExecutor(max(1, min(len(plan), os.cpu_count() or 1))) as pool:
        results = list(pool.map(run_fold, range(len(plan))))
    chosen = [sel for sel, _ in results if len(sel)]
    folds = [info for _, info in results]
    union = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    return OtmResult(union.astype(np.int64), len(union) / len(cand), folds)


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, limit, replace=False)) if n > limit else np.arange(n)


def target_embeddings(ctx: SelectionContext) -> np.ndarray:
    """Target vectors in the pool's embedding space (computed once per target; see curate.target)."""
    return ctx.target.embeddings(ctx.pool)


@register
class TarotSelector(Selector):
    name = "tarot"
    description = (
        "Optimal-transport targeted selection on whitened embeddings; covers every target mode; "
        "estimates the optimal selection size (budget=auto); weight = transported target mass."
    )
    Params = TarotParams
    uses_target = True
    requires_target = True
    supports_auto_budget = True

    def select(self, ctx: SelectionContext) -> Selection:
        p, r = self.params, self.params.resolved()
        raw = ctx.pool.embeddings()
        raw_tgt = target_embeddings(ctx)
        if raw_tgt.shape[1] != raw.shape[1]:
            raise InputError(f"target vectors have {raw_tgt.shape[1]} dimensions, the pool's {raw.shape[1]}")
        ctx.progress(0.1, "whitening")
        mode = p.mode if p.mode != "auto" else ("otm" if ctx.budget_auto else "fixed_size")
        if r["shrinkage"] == "cv" and p.whitening != "none":
            layers = round(ctx.budget / len(raw_tgt)) if mode != "otm" and ctx.budget else 1  # the layers' depth
            choice = choose_whitening(
                raw, raw_tgt, p.whitening, tuple(p.shrinkage_grid), r["ridge"], r["relative_ridge"],
                depth=min(max(layers, 1), 20), seed=p.fold_seed,
            )  # fmt: skip
            white, summary = choice.whitener, choice.summary()
        else:
            white = fit_whitener([raw, raw_tgt], p.whitening, r["shrinkage"], r["ridge"], r["relative_ridge"])
            summary = white.summary()
        cand, tgt = white.transform(raw), white.transform(raw_tgt)
        n = len(cand)
        ctx.progress(0.3, "nearest neighbours")
        nbrs = Neighbours.build(cand, tgt, min(p.max_neighbors, n))
        metrics: dict = {"mode": mode, "whitening": summary, "target_records": len(tgt)}
        estimate = None
        if mode == "otm" and len(tgt) < 2:
            raise InputError("otm (budget auto) needs at least 2 target records to hold some out", field="target")
        if mode == "otm" or (p.estimate_ratio and len(tgt) >= 2):
            ctx.progress(0.5, "OT ratio estimate")
            estimate = otm(
                cand, tgt, nbrs, p.k_fold_splits, p.fold_seed, p.sim_threshold, r["stop_rule"], r["search"],
                p.ot_backend, p.ot_reg, None if p.compat == "reference" else p.otm_target_sample,
                None if p.compat == "reference" else p.otm_set_sample,
            )  # fmt: skip
            metrics.update(
                ratio_hat=round(estimate.ratio, 6), otm_size=len(estimate.indices), otm_folds=estimate.folds
            )
        ctx.progress(0.8, "selecting")
        first, best = nbrs.first_layer(n)
        if mode == "otm":
            chosen = estimate.indices
            chosen = chosen[np.lexsort((chosen, -best[chosen], first[chosen]))]
            if not ctx.budget_auto:
                chosen = chosen[: ctx.budget]
        else:
            chosen, info = fixed_size(
                cand,
                tgt,
                ctx.budget,
                nbrs,
                r["overflow_rule"],
                ctx.rng(0),
                p.ot_backend,
                p.ot_reg,
                p.fill_rounds,
                r["layering"],
            )
            metrics.update(info)
            metrics["budget_short"] = len(chosen) < ctx.budget
        weights = None
        if r["weighting"] == "mass" and len(chosen):
            mass = transported_mass(cand[chosen], tgt, p.weight_temperature)
            weights = np.maximum(mass, 1e-6)  # every selected record stays in the training mix
        scores = best[chosen].astype(np.float64)  # whitened cosine to the nearest target example
        return Selection(indices=chosen.astype(np.int64), weights=weights, scores=scores, metrics=metrics)
