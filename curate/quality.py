"""Selection-quality metrics, each defined once and used by both the manifest (at selection time)
and the report (at report time), so the two never disagree (issue 16: coverage 0.987 in a manifest
vs 0.9816 in its report; tarot's OT distance in whitened space vs the report's in raw space).

A metric is one entry in ``REGISTRY``: a name, the inputs it needs (target, embeddings, n-grams,
domains), which way is better, and a function computing it for *several* row sets at once (KL
reduction streams the pool's n-grams once for all sets). Each is shown beside ``RANDOM_DRAWS``
random subsets of the same size drawn from a seed-derived stream, so the same selection and seed
give the same numbers wherever they are computed. Adding a metric is one ``@metric(...)`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from curate.metrics import kl_reduction, mean_nn_distance, selected_totals
from curate.pool import Pool
from curate.selectors.stratified import NO_DOMAIN
from curate.target import Target

RANDOM_DRAWS = 3  # random subsets per metric; manifest and report show their mean and spread
COVERAGE_QUERIES = 1_000  # pool rows whose nearest subset record is measured (all of a smaller pool)
COVERAGE_MAX_ROWS = 50_000  # larger sets are subsampled (selection and random alike): time and memory stay bounded
OT_SAMPLE = 1_000  # points per side of the exact OT problem (EMD on ≤ 1e6 cells)
NEAREST_DOMAIN_SAMPLE = 50_000  # pool records a target text may take its domain from
_SEED_TAG = 0x5E1EC7  # separates metric streams from any selector stream of the same seed
Better = Literal["higher", "lower", "closer"]  # closer: to the target's value (the pool's when untargeted)
DIRECTIONS: dict[str, str] = {  # selector-specific numbers that have a better side
    "objective": "higher",
    "max_share_deviation": "lower",
    "duplicate_fraction": "lower",
}


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
class QualityMetric:
    name: str
    description: str
    better: Better
    needs: tuple[str, ...]
    compute: Callable[[MetricInputs, list[np.ndarray]], list[float]]
    not_ready: Callable[[MetricInputs], str | None] = lambda inputs: None  # why it cannot be computed yet


REGISTRY: dict[str, QualityMetric] = {}


def metric(name: str, description: str, better: Better, needs: tuple[str, ...], not_ready=None):
    def wrap(fn):
        REGISTRY[name] = QualityMetric(name, description, better, needs, fn, not_ready or (lambda inputs: None))
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


def domain_codes(inputs: MetricInputs) -> tuple[np.ndarray, list[str]]:
    def make():
        col = inputs.pool.column("domain").fill_null(NO_DOMAIN)
        names = sorted(col.unique().to_list())
        codes = (col.rank("dense") - 1).to_numpy().astype(np.int64)  # dense rank = index in sorted names
        return codes, names

    return inputs.cached("domain_codes", make)


def domain_reference(inputs: MetricInputs) -> tuple[str, np.ndarray]:
    """The distribution a domain mix is compared with. A targeted selection should move toward its
    target: the target's own domain labels when it has them (a target pool's domain column, or the
    target file's field named like the pool's), else each target text labelled with the domain of
    its nearest pool record (among a pool sample). Untargeted: the pool."""
    return inputs.cached("domain_reference", lambda: _domain_reference(inputs))


def _target_domains(inputs: MetricInputs) -> np.ndarray | None:
    labels = inputs.cached("target_domains", lambda: inputs.target.domains() if inputs.target else None)
    if labels is None or labels.null_count() == len(labels):
        return None
    _, names = domain_codes(inputs)
    counts = dict(labels.drop_nulls().value_counts().iter_rows())
    vec = np.array([counts.get(n, 0) for n in names], np.float64)
    return vec / vec.sum() if vec.sum() > 0 else None


def _domain_reference(inputs: MetricInputs) -> tuple[str, np.ndarray]:
    codes, names = domain_codes(inputs)
    own = _target_domains(inputs)
    if own is not None:
        return "target", own
    if inputs.has("target_embed") and inputs.has("embed"):
        import faiss

        sample = _cap(np.arange(inputs.pool.n_records), NEAREST_DOMAIN_SAMPLE, inputs.rng(12))
        index = faiss.IndexFlatIP(inputs.target_embeddings.shape[1])
        index.add(gather_embeddings(inputs.pool, sample))
        _, nearest = index.search(np.ascontiguousarray(inputs.target_embeddings, np.float32), 1)
        return "target", np.bincount(codes[sample[nearest[:, 0]]], minlength=len(names)) / len(nearest)
    return "pool", np.bincount(codes, minlength=len(names)) / max(len(codes), 1)


def _domain_tv_not_ready(inputs: MetricInputs) -> str | None:
    """A texts target without labels is labelled through its embeddings; without them at hand (a
    selector that never embedded the target) the number would silently compare with the pool."""
    if inputs.target is None or not inputs.has("embed") or inputs.has("target_embed"):
        return None
    return None if _target_domains(inputs) is not None else "needs target embeddings (computed by the report)"


@metric(
    "domain_tv",
    "Total-variation distance between the subset's domain mix and the target's (its own labels, else "
    "each target text takes its nearest pool record's domain); untargeted: the pool's.",
    "lower",
    ("domain",),
    _domain_tv_not_ready,
)
def _domain_tv(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    codes, names = domain_codes(inputs)
    _, ref = domain_reference(inputs)
    out = []
    for rows in sets:
        p = np.bincount(codes[rows], minlength=len(names)) / max(len(rows), 1)
        out.append(0.5 * float(np.abs(p - ref).sum()))
    return out


@metric(
    "coverage",
    f"Mean L2 distance from up to {COVERAGE_QUERIES} pool records to their nearest subset record "
    "(embeddings; a distance, so lower is better).",
    "lower",
    ("embed",),
)
def _coverage(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
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
    f"Exact optimal-transport cost (chord distance on the pool's embeddings) between ≤{OT_SAMPLE} subset and "
    "target records.",
    "lower",
    ("target", "embed", "target_embed"),
)
def _ot_distance(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    from curate.algorithms.transport import ot_distance as ot

    rng = inputs.rng(11)
    tgt = np.asarray(inputs.target_embeddings, np.float32)
    if len(tgt) > OT_SAMPLE:
        tgt = tgt[_cap(np.arange(len(tgt)), OT_SAMPLE, rng)]
    return [ot(gather_embeddings(inputs.pool, _cap(rows, OT_SAMPLE, rng)), tgt, backend="emd") for rows in sets]


def _target_ngrams(inputs: MetricInputs) -> tuple[np.ndarray, float]:
    """(target n-gram totals, target mean tokens) in the pool's hashing, computed once."""
    from curate.selectors.dsir import target_totals

    return inputs.cached("target_totals", lambda: target_totals(inputs.target, inputs.pool.ngrams().params))


@metric(
    "kl_reduction",
    "KL(target ‖ pool) − KL(target ‖ subset) over the pool's hashed n-grams, add-one smoothing (DSIR §1.7).",
    "higher",
    ("target", "ngrams"),
)
def _kl_reduction(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    feats = inputs.pool.ngrams()
    tgt, _ = _target_ngrams(inputs)
    totals = selected_totals(feats, [np.sort(rows) for rows in sets])
    raw = feats.totals()
    return [kl_reduction(tgt, raw, t) for t in totals]


def _length_reference(inputs: MetricInputs) -> dict:
    n_tokens = np.asarray(inputs.pool.ngrams().n_tokens, np.float64)
    out = {"pool": round(float(n_tokens.mean()), 3) if len(n_tokens) else None, "target": None}
    if inputs.target is not None:
        out["target"] = round(float(_target_ngrams(inputs)[1]), 3)
    out["reference"] = out["target"] if out["target"] is not None else out["pool"]
    return out


@metric(
    "mean_tokens",
    "Mean record length in tokens (the n-gram tokenizer's words); closer to the target's (untargeted: the "
    "pool's) is better — a selector that favours short or long records shows here.",
    "closer",
    ("ngrams",),
)
def _mean_tokens(inputs: MetricInputs, sets: list[np.ndarray]) -> list[float]:
    n_tokens = np.asarray(inputs.pool.ngrams().n_tokens, np.float64)
    return [float(n_tokens[rows].mean()) if len(rows) else float("nan") for rows in sets]


def target_vectors(pool: Pool, target: Target | None, *, compute: bool) -> np.ndarray | None:
    """The target's vectors in the pool's space for the metrics: the ones a selector (or the manifest's
    copy) already has, a target pool's own; with ``compute``, encoded now. None when the spaces differ."""
    if target is None or not pool.has_feature("embed"):
        return None
    vectors = target.cached_embeddings(pool)
    if vectors is None and (compute or (target.pool is not None and target.pool.has_feature("embed"))):
        vectors = target.embeddings(pool)
    if vectors is None or vectors.shape[1] != pool.embeddings().shape[1]:
        return None
    return np.asarray(vectors, np.float32)


def compute_all(inputs: MetricInputs, selected: np.ndarray, *, when_ready: bool = False) -> list[dict]:
    """Every applicable metric for ``selected`` (pool row ids) beside ``RANDOM_DRAWS`` random
    subsets of the same size; inapplicable ones are listed with the reason, not silently dropped.
    ``when_ready`` (selection time) also skips those whose inputs are not at hand yet."""
    n, k = inputs.pool.n_records, len(selected)
    rng = inputs.rng(0)
    randoms = [np.sort(rng.choice(n, k, replace=False)) for _ in range(RANDOM_DRAWS)]
    out = []
    for m in REGISTRY.values():
        row: dict = {"name": m.name, "description": m.description, "better": m.better}
        missing = [need for need in m.needs if not inputs.has(need)]
        reason = "empty selection" if k == 0 else (f"needs {', '.join(missing)}" if missing else None)
        if reason is None and when_ready:
            reason = m.not_ready(inputs)
        if reason:
            out.append({**row, "skipped": reason})
            continue
        values = m.compute(inputs, [np.sort(selected), *randoms])
        sel, rand = values[0], np.asarray(values[1:], np.float64)
        row.update(selection=round(float(sel), 6), random=round(float(rand.mean()), 6))
        row["random_std"] = round(float(rand.std()), 6)
        row["random_draws"] = len(rand)
        if m.better == "closer":
            row.update(_length_reference(inputs))
            gain = abs(rand.mean() - row["reference"]) - abs(sel - row["reference"])
        else:
            gain = sel - rand.mean() if m.better == "higher" else rand.mean() - sel
        row["better_than_random"] = bool(gain > 0)
        out.append(row)
    return out


def manifest_metrics(rows: list[dict]) -> dict:
    """The computed rows as a manifest records them: ``quality`` (each row with its direction and
    random baseline) plus the flat ``<name>`` / ``<name>_random`` numbers tables and tests read."""
    out: dict = {"quality": {}}
    for row in rows:
        if "skipped" in row:
            continue
        out["quality"][row["name"]] = {k: v for k, v in row.items() if k not in ("name", "description")}
        out[row["name"]] = row["selection"]
        out[f"{row['name']}_random"] = row["random"]
        if row["name"] == "mean_tokens":
            out.update(mean_tokens_selected=round(row["selection"], 3), mean_tokens_pool=row["pool"])
            out["mean_tokens_target"] = row["target"]
    return out


def direction(name: str) -> str | None:
    """Which way ``name`` is better: 'higher', 'lower', 'closer' (to the target), or None."""
    return REGISTRY[name].better if name in REGISTRY else DIRECTIONS.get(name)


def format_metric(name: str, value, random=None) -> str:
    """``name=value`` with its random baseline and its direction, for summary tables."""
    better = direction(name)
    tail = [f"random {random}"] if random is not None else []
    if better:
        tail.append("closer to target is better" if better == "closer" else f"{better} is better")
    return f"{name}={value}" + (f" ({', '.join(tail)})" if tail else "")


def format_headline(metrics: dict, names: tuple[str, ...] | None = None) -> str:
    """The scalar metrics of a manifest (or ``names`` of them), each with its baseline and direction."""
    keys = [k for k in (names or metrics) if k in metrics and not isinstance(metrics[k], dict | list)]
    shown = [k for k in keys if not (k.endswith("_random") and k.removesuffix("_random") in metrics)]
    return ", ".join(format_metric(k, metrics[k], metrics.get(f"{k}_random")) for k in shown)
