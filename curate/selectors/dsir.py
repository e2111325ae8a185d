"""DSIR: importance resampling on hashed n-grams (Xie et al. 2023; ALGORITHMS.md §1).

Two bag-of-hashed-n-gram models (target, raw pool); each record's log importance weight is a sparse
mat-vec of its counts with ``log p_target − log p_raw``; ``k`` records are drawn without replacement
∝ weight by Gumbel top-k. The pool's n-gram artifact is reused when its featurisation matches, else
the same cached stage is run with the selector's featurisation (streamed, part by part), so a pool
never has to fit in memory: only the per-record score vector does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from curate.errors import InputError
from curate.executors.base import Task, current_executor
from curate.pool import Pool
from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register
from curate.selectors.stratified import NO_DOMAIN
from curate.stages.ngrams import NgramFeatures, NgramParams, NgramStage, featurize
from curate.target import Target

RANDOM_BASELINES = 5  # random selections of the same size scored beside DSIR's KL reduction


class DsirParams(SelectorParams):
    compat: Literal["none", "reference"] = Field(
        "none",
        description="reference = the data-selection package's featurisation (sha256, wordpunct) and model "
        "(λ = 0, raw fit on the first 1e5·buckets n-grams); min_length stays 0 (ALGORITHMS.md §1.9).",
    )
    num_buckets: int = Field(10_000, ge=1, description="Hash buckets (paper: 10,000).")
    ngram_order: int = Field(2, ge=1, le=5, description="Count all 1..n-grams (2 = unigrams + bigrams).")
    tokenizer: Literal["wordpunct", "whitespace"] = "wordpunct"
    hash: Literal["fast", "sha256"] | None = Field(None, description="Default: fast; sha256 under compat.")
    target_laplace: float | None = Field(
        None, ge=0, description="Pseudo-count per target bucket; default 1 (0 under compat, as the package)."
    )
    log_floor: float = Field(1e-8, gt=0, description="Added inside both logs (reference 1e-8).")
    raw_fit_ngrams: int | Literal["auto", "all"] | None = Field(
        None, description="Raw-model fit budget in n-gram occurrences: auto = 1e5·buckets; default all (auto)."
    )
    raw_fit_sampling: Literal["random", "prefix"] | None = Field(
        None, description="Which rows fill the raw fit budget: random (default) or the first rows (reference)."
    )
    min_length: int = Field(
        0, ge=0, description="Drop records with fewer tokens (the package's 100 empties short data)."
    )
    normalize_length_to: int | None = Field(
        None,
        ge=1,
        description="Rescale log w to this many tokens (equal-length scoring, as the paper's "
        "128-word chunks); default off = the raw sum, which favours short records.",
    )
    mode: Literal["sample", "topk"] = Field("sample", description="sample = Gumbel top-k; topk = largest log w.")
    weighting: Literal["uniform", "importance"] = Field(
        "uniform",
        description="uniform: resampling already corrects the distribution; importance: "
        "self-normalised exp(log w), clipped at clip_percentile of the selection.",
    )
    clip_percentile: float = Field(99.0, gt=0, le=100)
    domain_quotas: dict[str, float] | None = Field(
        None, description="Optional share of the budget per domain (normalised); each drawn by Gumbel top-k."
    )
    separate_targets: bool = Field(
        False,
        description="One importance model per target label (target_field), each drawing its quota by Gumbel "
        "top-k from the rows not yet chosen (reference semantics); default: one model of all target texts.",
    )
    target_field: str = Field(
        "domain", description="separate_targets: the target file's field naming each record's target (pools: domain)."
    )
    target_proportions: dict[str, float] | None = Field(
        None,
        description="separate_targets: budget share per target, in drawing order (normalised); default "
        "proportional to each target's n-gram count. k_t = floor(k·p_t); the last target takes the rest.",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> DsirParams:
        ref = self.compat == "reference"
        if self.hash is None:
            self.hash = "sha256" if ref else "fast"
        if self.target_laplace is None:
            self.target_laplace = 0.0 if ref else 1.0
        if self.raw_fit_ngrams is None:
            self.raw_fit_ngrams = "auto" if ref else "all"
        if self.raw_fit_sampling is None:
            self.raw_fit_sampling = "prefix" if ref else "random"
        if isinstance(self.raw_fit_ngrams, int) and self.raw_fit_ngrams < 1:
            raise ValueError("raw_fit_ngrams must be ≥ 1, 'auto' or 'all'")
        if ref and (self.hash != "sha256" or self.tokenizer != "wordpunct"):
            raise ValueError("compat=reference needs hash=sha256 and tokenizer=wordpunct")
        if self.target_proportions is not None and not self.separate_targets:
            raise ValueError("target_proportions needs separate_targets=true")
        if self.separate_targets and self.domain_quotas:
            raise ValueError("separate_targets and domain_quotas both split the budget: choose one")
        if self.target_proportions and (
            any(v < 0 for v in self.target_proportions.values()) or sum(self.target_proportions.values()) <= 0
        ):
            raise ValueError("target_proportions must be ≥ 0 with a positive sum")
        return self

    def ngram_params(self) -> NgramParams:
        return NgramParams(
            num_buckets=self.num_buckets, ngram_order=self.ngram_order, tokenizer=self.tokenizer, hash=self.hash
        )


def pool_features(pool: Pool, params: NgramParams) -> NgramFeatures:
    """The pool's stored n-grams when they match ``params``; else the cached stage run with ``params``."""
    if pool.has_feature("ngrams") and pool.ngrams().params == params:
        return pool.ngrams()
    return NgramFeatures(Path(NgramStage(params).run(pool)["path"]))


def target_totals(target: Target, params: NgramParams) -> tuple[np.ndarray, float]:
    """(summed bucket counts, mean tokens per text) of the target, streamed."""
    if target.pool is not None:
        feats = pool_features(target.pool, params)
        return feats.totals(), float(np.mean(feats.n_tokens)) if target.pool.n_records else 0.0
    total, tokens, texts = np.zeros(params.num_buckets, np.float64), 0, 0
    for batch in target.iter_texts():
        counts, n_tokens = featurize(batch, params)
        total += np.asarray(counts.sum(axis=0), np.float64).ravel()
        tokens, texts = tokens + int(n_tokens.sum()), texts + len(n_tokens)
    return total, tokens / max(texts, 1)


def target_groups(target: Target, params: NgramParams, field: str) -> tuple[dict[str, np.ndarray], float]:
    """Summed bucket counts per target label (``separate_targets``), and mean tokens per text."""
    totals: dict[str, np.ndarray] = {}
    tokens = texts = 0
    for batch, labels in target.iter_labelled(field):
        counts, n_tokens = featurize(batch, params)
        names, codes = np.unique(labels.to_numpy(), return_inverse=True)
        member = sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(names), len(codes)))
        per_label = np.asarray((member @ counts).todense(), np.float64)  # one sparse product for all labels
        for name, row in zip(names.tolist(), per_label, strict=True):
            totals[name] = totals[name] + row if name in totals else row
        tokens, texts = tokens + int(n_tokens.sum()), texts + len(n_tokens)
    return totals, tokens / max(texts, 1)


def log_ratio(raw: np.ndarray, target: np.ndarray, laplace: float, floor: float) -> np.ndarray:
    """log p_target − log p_raw per bucket; only the target side is smoothed (as the package)."""
    m = len(raw)
    p_raw = raw / max(raw.sum(), 1.0)
    p_tgt = (target + laplace) / max(target.sum() + m * laplace, 1e-300)
    return np.log(p_tgt + floor) - np.log(p_raw + floor)


def raw_fit_rows(feats: NgramFeatures, n: int, budget: int, sampling: str, rng) -> np.ndarray:
    """Rows the raw model is fitted on when the n-gram budget binds: the first rows (reference) or
    random rows, added until the running total first exceeds the budget (as the package does)."""
    per_row = np.concatenate([np.asarray(m.sum(axis=1)).ravel() for _, m in feats.iter_parts()] or [[]])
    order = rng.permutation(n) if sampling == "random" else np.arange(n)
    last = int(np.searchsorted(np.cumsum(per_row[order]), budget, side="right"))
    return np.sort(order[: last + 1])


class ScoreTask(Task):
    """log w of one stored n-gram part: a CSR mat-vec, the same bytes on any worker."""

    def __init__(self, root: Path, log_diff: np.ndarray) -> None:
        self.root, self.log_diff = root, log_diff

    def __call__(self, part: dict) -> np.ndarray:
        return sp.load_npz(self.root / part["path"]).tocsr() @ self.log_diff


def score(feats: NgramFeatures, n: int, log_diff: np.ndarray) -> np.ndarray:
    """log w per record, one part per unit, on the current executor; memory: one part plus the output.
    The Gumbel noise is drawn afterwards on the driver from one stream indexed by row id, so the
    draw never depends on how scoring was partitioned."""
    out = np.empty((n, *log_diff.shape[1:]), np.float64)  # log_diff (m,) → (n,); (m, T) targets → (n, T)
    for part, w in zip(feats.parts, current_executor().map(ScoreTask(feats.path, log_diff), feats.parts), strict=True):
        out[part["start"] : part["start"] + part["rows"]] = w
    return out


def gumbel_top_k(keys: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidates with the largest key, largest first; ties go to the smaller row id."""
    if k <= 0 or len(candidates) == 0:
        return np.empty(0, np.int64)
    sub = keys[candidates]
    if k < len(candidates):
        part = np.argpartition(-sub, k - 1)[:k]
        candidates, sub = candidates[part], sub[part]
    return candidates[np.lexsort((candidates, -sub))]


@register
class DsirSelector(Selector):
    name = "dsir"
    description = "Importance resampling on hashed n-grams toward a target (DSIR, Xie et al. 2023)."
    Params = DsirParams
    uses_target = True
    requires_target = True

    def select(self, ctx: SelectionContext) -> Selection:
        from curate.metrics import selected_totals  # metrics imports the selectors package

        p: DsirParams = self.params
        pool, n = ctx.pool, ctx.pool.n_records
        ngp = p.ngram_params()
        ctx.progress(0.0, "featurising pool")
        feats = pool_features(pool, ngp)
        groups = None
        if p.separate_targets:
            groups, tgt_len = target_groups(ctx.target, ngp, p.target_field)
            groups = dict(sorted(groups.items()))  # a canonical order: params are hashed key-sorted
            tgt = np.sum(list(groups.values()), axis=0)
        else:
            tgt, tgt_len = target_totals(ctx.target, ngp)
        if tgt.sum() == 0:
            raise InputError("the target has no tokens to fit a model on", field="target")
        budget = {"auto": 100_000 * p.num_buckets, "all": None}.get(p.raw_fit_ngrams, p.raw_fit_ngrams)
        ctx.progress(0.3, "fitting raw model")
        raw, fit_rows = feats.totals(), None
        if budget is not None and raw.sum() > budget:
            fit_rows = raw_fit_rows(feats, n, budget, p.raw_fit_sampling, ctx.rng(1))
            raw = selected_totals(feats, [fit_rows])[0]
        models = [tgt] if groups is None else list(groups.values())
        log_diff = np.stack([log_ratio(raw, t, p.target_laplace, p.log_floor) for t in models], axis=1)
        ctx.progress(0.5, "scoring")
        log_w = score(feats, n, log_diff[:, 0] if groups is None else log_diff)  # (n,) pooled, (n, T) separate
        n_tokens = np.asarray(feats.n_tokens, np.int64)
        if p.normalize_length_to:
            scale = p.normalize_length_to / np.maximum(n_tokens, 1)
            log_w = log_w * (scale if groups is None else scale[:, None])
        eligible = n_tokens >= p.min_length
        extra: dict = {}
        if groups is None:
            keys = log_w if p.mode == "topk" else log_w + ctx.rng(0).gumbel(size=n)
            chosen, clipped = self._draw(ctx, keys, eligible)
            scores, block = log_w[chosen], np.zeros(len(chosen), np.int64)
        else:
            chosen, block, clipped, extra = self._draw_per_target(ctx, log_w, eligible, groups)
            scores = log_w[chosen, block]
            log_w = log_w.max(axis=1)  # summaries below: each record's best target
        ctx.progress(0.8, "metrics")
        weights = None
        if p.weighting == "importance" and len(chosen):
            weights = np.empty(len(chosen))
            for b in np.unique(block):  # self-normalised within each target's draw
                mine = block == b
                w = np.exp(scores[mine] - scores[mine].max())
                w = np.maximum(np.minimum(w, np.percentile(w, p.clip_percentile)), np.finfo(np.float64).tiny)
                weights[mine] = w / w.mean()
        metrics = self._metrics(ctx, feats, raw, tgt, chosen, log_w, n_tokens, tgt_len)
        metrics.update(
            eligible=int(eligible.sum()),
            filtered_by_length=int(n - eligible.sum()),
            raw_fit_rows=n if fit_rows is None else len(fit_rows),
            budget_clipped=bool(clipped),
            **extra,
        )
        return Selection(indices=chosen, weights=weights, scores=scores, metrics=metrics)

    def _draw(self, ctx: SelectionContext, keys: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, bool]:
        """Gumbel top-k over eligible rows, optionally with per-domain quotas; rank = key order."""
        quotas = self.params.domain_quotas
        if not quotas:
            rows = np.flatnonzero(eligible)
            return gumbel_top_k(keys, rows, ctx.budget), ctx.budget > len(rows)
        if not ctx.pool.has_domain:
            raise InputError(f"pool '{ctx.pool.name}' has no domain field for domain_quotas", field="domain_quotas")
        domains = ctx.pool.column("domain").fill_null(NO_DOMAIN).to_numpy()
        names = sorted(quotas)
        missing = sorted(set(names) - set(domains.tolist()))
        if missing or any(quotas[d] < 0 for d in names) or sum(quotas.values()) <= 0:
            raise InputError(
                f"domain_quotas must be ≥ 0 shares of existing domains; unknown: {missing}", field="domain_quotas"
            )
        shares = np.array([quotas[d] for d in names], np.float64)
        exact = shares / shares.sum() * ctx.budget  # largest remainder, uncapped: shares are not sizes
        want = np.floor(exact).astype(np.int64)
        want[np.argsort(-(exact - want), kind="stable")[: ctx.budget - int(want.sum())]] += 1
        picked = []
        for name, k_d in zip(names, want, strict=True):
            rows = np.flatnonzero(eligible & (domains == name))
            picked.append(gumbel_top_k(keys, rows, int(k_d)))
        chosen = np.concatenate(picked) if picked else np.empty(0, np.int64)
        chosen = chosen[np.lexsort((chosen, -keys[chosen]))]
        return chosen.astype(np.int64), len(chosen) < ctx.budget

    def _draw_per_target(
        self, ctx: SelectionContext, log_w: np.ndarray, eligible: np.ndarray, groups: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        """The reference's separate targets: quota k_t = floor(k·p_t), the last target takes the rest;
        in turn, each draws its quota by Gumbel top-k on its own log w from the rows not yet chosen."""
        p, names, k = self.params, list(groups), ctx.budget
        wanted = p.target_proportions
        if wanted is None:
            shares = np.array([groups[t].sum() for t in names], np.float64)
        else:
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise InputError(
                    f"target_proportions names unknown targets {unknown}; the target's {p.target_field} "
                    f"values are {names}",
                    field="target_proportions",
                )
            shares = np.array([wanted.get(t, 0.0) for t in names], np.float64)
        quotas = np.floor(k * shares / shares.sum()).astype(np.int64)
        quotas[-1] = k - quotas[:-1].sum()
        rng, free = ctx.rng(0), eligible.copy()
        picked, blocks = [], []
        for t, k_t in enumerate(quotas.tolist()):
            keys = log_w[:, t] if p.mode == "topk" else log_w[:, t] + rng.gumbel(size=len(free))
            got = gumbel_top_k(keys, np.flatnonzero(free), k_t)
            free[got] = False
            picked.append(got)
            blocks.append(np.full(len(got), t, np.int64))
        chosen, block = np.concatenate(picked), np.concatenate(blocks)
        info = {
            "target_quotas": dict(zip(names, quotas.tolist(), strict=True)),
            "target_counts": {t: int((block == i).sum()) for i, t in enumerate(names)},
        }
        return chosen.astype(np.int64), block, len(chosen) < k, info

    def _metrics(self, ctx, feats, raw, tgt, chosen, log_w, n_tokens, tgt_len) -> dict:
        """KL reduction (paper §1.7, add-one smoothing on both model sides) beside random draws of the
        same size, plus the length bias check: selected vs target vs pool mean tokens."""
        from curate.metrics import kl_reduction, selected_totals

        rng = ctx.rng(2)
        n = ctx.pool.n_records
        randoms = [np.sort(rng.choice(n, size=len(chosen), replace=False)) for _ in range(RANDOM_BASELINES)]
        totals = selected_totals(feats, [np.sort(chosen), *randoms])
        klr = kl_reduction(tgt, raw, totals[0])
        klr_random = [kl_reduction(tgt, raw, t) for t in totals[1:]]
        return {
            "kl_reduction": round(klr, 6),
            "kl_reduction_random": round(float(np.mean(klr_random)), 6) if len(chosen) else 0.0,
            "kl_smoothing": "add-one pseudo-count per bucket on raw and selected; target unsmoothed",
            "log_w_mean": round(float(log_w.mean()), 6) if n else None,
            "log_w_std": round(float(log_w.std()), 6) if n else None,
            "mean_tokens_selected": round(float(n_tokens[chosen].mean()), 3) if len(chosen) else None,
            "mean_tokens_target": round(tgt_len, 3),
            "mean_tokens_pool": round(float(n_tokens.mean()), 3) if n else None,
        }
