"""Report-time selection-quality metrics, each computed for the selection and for random subsets
of the same size drawn at report time, so a number is never shown without its baseline.

A metric is one entry in ``REGISTRY``: a name, which inputs it needs (target, embeddings, n-grams,
domains), whether higher or lower is better, and a function computing it for *several* row sets at
once (KL reduction streams the pool's n-grams once for all sets). The math lives in
``curate.metrics`` and ``curate.algorithms.transport``; this module only decides what to feed them.
Adding a metric is one ``@metric(...)`` function below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from curate.pool import Pool
from curate.target import Target

RANDOM_DRAWS = 3  # random subsets per metric; the report shows their mean and spread
COVERAGE_QUERIES = 1_000  # pool rows whose nearest subset record is measured (all of a smaller pool)
COVERAGE_MAX_ROWS = 50_000  # larger sets are subsampled (selection and random alike): time and memory stay bounded
OT_SAMPLE = 1_000  # points per side of the exact OT problem (EMD on ≤ 1e6 cells)
NEAREST_DOMAIN_SAMPLE = 50_000  # pool records a target text may take its domain from
_SEED_TAG = 0x5E1EC7  # separates report-time streams from any selector stream of the same seed


@dataclass
class MetricInputs:
    """What the metrics may read, with the expensive pieces computed once and shared."""

    pool: Pool
    target: Target | None
    seed: int
    target_embeddings: np.ndarray | None = None
    _cache: dict = field(default_factory=dict)

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([_SEED_TAG, self.seed, stream]))

    def has(self, need: str) -> bool:
        if need == "target":
            return self.target is not None
        if need == "target_embed":
            return self.target_embeddings is not None and len(self.target_embeddings) > 0
        if need == "domain":
            return self.pool.has_domain
        return self.pool.has_feature(need)

    def cached(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


@dataclass(frozen=True)
class ReportMetric:
    name: str
    description: str
    better: Literal["higher", "lower"]
    needs: tuple[str, ...]
    compute: Callable[[MetricInputs, list[np.ndarray]], list[float]]


REGISTRY: dict[str, ReportMetric] = {}


def metric(name: str, description: str, better: Literal["higher", "lower"], needs: tuple[str, ...]):
    def wrap(fn):
        REGISTRY[name] = ReportMetric(name, description, better, needs, fn)
        return fn

    return wrap


def gather_embeddings(pool: Pool, rows: np.ndarray, block: int = 2_048) -> np.ndarray:
    """Embedding rows (any order) as float32, read through a fresh memory map per block. One
    long-lived map of a multi-GB file would keep every page the kernel faults in around each
    random row (up to 64 KB a row) resident, which is what blew past 1 GB on a 1M-row report."""
    path = pool.feature_path("embed") / "embeddings.npy"
    rows = np.asarray(rows, np.int64)
    first = np.load(path, mmap_mode="r")
    out = np.empty((len(rows), first.shape[1]), np.float32)
    del first
    for start in range(0, len(rows), block):
        x = np.load(path, mmap_mode="r")
        out[start : start + block] = x[rows[start : start + block]]
        del x  # unmapped here: resident pages stay bounded by one block
    return out


def _cap(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, limit, replace=False)) if len(rows) > limit else np.sort(rows)


def _domain_codes(inputs: MetricInputs) -> tuple[np.ndarray, list[str]]:
    def make():
        from curate.selectors.stratified import NO_DOMAIN

        col = inputs.pool.column("domain").fill_null(NO_DOMAIN)
        names = sorted(col.unique().to_list())
        codes = (col.rank("dense") - 1).to_numpy().astype(np.int64)  # dense rank = index in sorted names
        return codes, names

    return inputs.cached("domain_codes", make)


def domain_reference(inputs: MetricInputs) -> tuple[str, np.ndarray]:
    """The distribution a domain histogram is compared with. A targeted selection should move
    toward its target: the target pool's own domains when it has them, else each target text
    labelled with the domain of its nearest pool record (among a pool sample). Untargeted: the pool."""
    return inputs.cached("domain_reference", lambda: _domain_reference(inputs))


def _domain_reference(inputs: MetricInputs) -> tuple[str, np.ndarray]:
    from curate.selectors.stratified import NO_DOMAIN

    codes, names = _domain_codes(inputs)
    tpool = inputs.target.pool if inputs.target is not None else None
    if tpool is not None and tpool.has_domain:
        counts = tpool.column("domain").fill_null(NO_DOMAIN).value_counts()
        got = dict(zip(counts[:, 0].to_list(), counts[:, 1].to_list(), strict=True))
        vec = np.array([got.get(n, 0) for n in names], np.float64)
        if vec.sum() > 0:
            return "target", vec / vec.sum()
    if inputs.has("target_embed") and inputs.has("embed"):
        import faiss

        sample = _cap(np.arange(inputs.pool.n_records), NEAREST_DOMAIN_SAMPLE, inputs.rng(12))
        index = faiss.IndexFlatIP(inputs.target_embeddings.shape[1])
        index.add(gather_embeddings(inputs.pool, sample))
        _, nearest = index.search(np.ascontiguousarray(inputs.target_embeddings, np.float32), 1)
        return "target", np.bincount(codes[sample[nearest[:, 0]]], minlength=len(names)) / len(nearest)
    return "pool", np.bincount(codes, minlength=len(names)) / max(len(codes), 1)


@metric(
    "domain_tv",
    "Total-variation distance between the subset's domain mix and the target's (target texts take "
    "their nearest pool record's domain); untargeted: the pool's.",
    "lower",
    ("domain",),
)
def domain_tv(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    codes, names = _domain_codes(inputs)
    _, ref = domain_reference(inputs)
    out = []
    for rows in sets:
        p = np.bincount(codes[rows], minlength=len(names)) / max(len(rows), 1)
        out.append(0.5 * float(np.abs(p - ref).sum()))
    return out


@metric(
    "coverage",
    f"Mean L2 distance from up to {COVERAGE_QUERIES} pool records to their nearest subset record (embeddings).",
    "lower",
    ("embed",),
)
def coverage(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    from curate.metrics import mean_nn_distance

    n = inputs.pool.n_records
    rng = inputs.rng(10)
    queries = gather_embeddings(inputs.pool, np.sort(rng.choice(n, min(n, COVERAGE_QUERIES), replace=False)))
    out = []
    for rows in sets:
        chosen = gather_embeddings(inputs.pool, _cap(rows, COVERAGE_MAX_ROWS, rng))
        points = np.concatenate([chosen, queries])
        out.append(mean_nn_distance(points, np.arange(len(chosen)), np.arange(len(chosen), len(points))))
    return out


@metric(
    "ot_distance",
    f"Exact optimal-transport cost (chord distance on embeddings) between ≤{OT_SAMPLE} subset and target records.",
    "lower",
    ("target", "embed", "target_embed"),
)
def ot_distance(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    from curate.algorithms.transport import ot_distance as ot

    rng = inputs.rng(11)
    tgt = np.asarray(inputs.target_embeddings, np.float32)
    if len(tgt) > OT_SAMPLE:
        tgt = tgt[_cap(np.arange(len(tgt)), OT_SAMPLE, rng)]
    return [ot(gather_embeddings(inputs.pool, _cap(rows, OT_SAMPLE, rng)), tgt, backend="emd") for rows in sets]


@metric(
    "kl_reduction",
    "KL(target ‖ pool) − KL(target ‖ subset) over the pool's hashed n-grams, add-one smoothing (DSIR §1.7).",
    "higher",
    ("target", "ngrams"),
)
def kl_reduction(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    from curate.metrics import kl_reduction as klr
    from curate.metrics import selected_totals
    from curate.selectors.dsir import target_totals

    feats = inputs.pool.ngrams()
    tgt, _ = target_totals(inputs.target, feats.params)
    totals = selected_totals(feats, [np.sort(rows) for rows in sets])
    raw = feats.totals()
    return [klr(tgt, raw, t) for t in totals]


def compute_all(inputs: MetricInputs, selected: np.ndarray) -> list[dict]:
    """Every applicable metric for ``selected`` (pool row ids) beside ``RANDOM_DRAWS`` random
    subsets of the same size; inapplicable ones are listed with the reason, not silently dropped."""
    n, k = inputs.pool.n_records, len(selected)
    rng = inputs.rng(0)
    randoms = [np.sort(rng.choice(n, k, replace=False)) for _ in range(RANDOM_DRAWS)]
    out = []
    for m in REGISTRY.values():
        row = {"name": m.name, "description": m.description, "better": m.better}
        missing = [need for need in m.needs if not inputs.has(need)]
        if missing or k == 0:
            row["skipped"] = "empty selection" if k == 0 else f"needs {', '.join(missing)}"
            out.append(row)
            continue
        values = m.compute(inputs, [np.sort(selected), *randoms])
        sel, rand = values[0], np.asarray(values[1:], np.float64)
        row.update(selection=round(float(sel), 6), random=round(float(rand.mean()), 6))
        row["random_std"] = round(float(rand.std()), 6)
        row["random_draws"] = len(rand)
        gain = sel - rand.mean()
        row["better_than_random"] = bool(gain > 0 if m.better == "higher" else gain < 0)
        out.append(row)
    return out
