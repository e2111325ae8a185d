"""Everything a selection report shows, as one JSON-able dict (also embedded in the HTML, so tests
and tools read the numbers instead of scraping plots).

Memory and time stay bounded for million-row manifests: the subset is read as four columns, the
pool as row ids/domains/clusters, and every plot is fed from samples (``MAP_POINTS``,
``SCORE_POINTS``); only histograms over counts use all rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from curate import jobs
from curate.config import Settings
from curate.errors import InputError, NotFoundError
from curate.eval.store import saved_evals
from curate.manifest import read_manifest
from curate.pool import Pool, manifest_pool, subset_rows
from curate.quality import MetricInputs, compute_all, domain_codes, domain_reference, gather_embeddings, target_vectors
from curate.selectors.stratified import NO_DOMAIN
from curate.target import Target, resolve_target

MAP_POINTS = 2_000  # per group (pool, selection) in the 2-D map; the target gets half
SCORE_POINTS = 20_000  # selected and not-selected records scored for the score histogram
HIST_BINS = 30
SAMPLE_DOMAINS, SAMPLES_PER_DOMAIN, SAMPLE_CHARS = 40, 3, 240  # sample texts shown per domain


def _stats(values: np.ndarray, edges: np.ndarray | None = None) -> dict:
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return {"n": 0}
    counts, edges = np.histogram(v, bins=HIST_BINS if edges is None else edges)
    q = np.quantile(v, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {
        "n": int(len(v)),
        "mean": round(float(v.mean()), 6),
        "std": round(float(v.std()), 6),
        "min": round(float(q[0]), 6),
        "p05": round(float(q[1]), 6),
        "median": round(float(q[2]), 6),
        "p95": round(float(q[3]), 6),
        "max": round(float(q[4]), 6),
        "hist": {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()},
    }


def _sample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, limit, replace=False)) if len(rows) > limit else np.sort(rows)


def report_target(settings: Settings, doc: dict, spec: str | None) -> tuple[Target | None, str | None]:
    """The manifest's target: ``spec`` if given (checked against the recorded fingerprint, so the
    report never compares with a different target); else the target pool while it is unchanged;
    else the copy the manifest keeps; else (a manifest written before it kept one) the texts file
    named by the job that made it. (None, why) when it cannot be found."""
    ref = doc.get("target")
    if ref is None:
        if spec:
            raise InputError("this manifest has no target; drop --target", field="target")
        return None, None
    candidates = [spec] if spec else []
    if not spec:
        if ref.get("kind") == "pool" and ref.get("id"):
            candidates.append(ref["id"])
        candidates.append(None)  # the manifest's own copy
        job_id = (doc.get("lineage") or {}).get("job")
        if job_id:
            try:
                job_target = (jobs.get(settings, job_id).params or {}).get("target")
            except NotFoundError:
                job_target = None
            if job_target:
                candidates.append(job_target)
    for cand in candidates:
        if cand is None:
            kept = Target.from_copy(Path(doc["path"]), ref)
            if kept is not None:
                return kept, None
            continue
        try:
            target = resolve_target(settings, cand, domain_fields=(ref.get("domain_field"), "domain"))
        except (InputError, NotFoundError):
            if spec:
                raise
            continue
        if target is not None and target.fingerprint == ref["fingerprint"]:
            return target, None
        if spec:
            raise InputError(
                f"target '{spec}' has fingerprint {target.fingerprint[:12]}…, the manifest's is "
                f"{ref['fingerprint'][:12]}…",
                field="target",
            )
    return None, "the target's texts were not found (pass --target PATH to the CLI); target metrics skipped"


def _target_embeddings(pool: Pool, target: Target | None) -> tuple[np.ndarray | None, str | None]:
    try:
        return target_vectors(pool, target, compute=True), None
    except InputError as exc:
        return None, str(exc)


def _selected_rows(pool: Pool, subset: pl.DataFrame) -> np.ndarray:
    return subset_rows(pool, subset.select("id", "rank"))["row_id"].to_numpy().astype(np.int64)


def _histograms(pool: Pool, rows: np.ndarray, inputs: MetricInputs, target_emb: np.ndarray | None) -> dict:
    out: dict = {}
    if pool.has_domain:
        codes, names = domain_codes(inputs)
        ref_name, ref = domain_reference(inputs)
        pool_counts = np.bincount(codes, minlength=len(names))
        sel_counts = np.bincount(codes[rows], minlength=len(names))
        out["domain"] = {
            "names": names,
            "pool": (pool_counts / max(pool_counts.sum(), 1)).round(6).tolist(),
            "selection": (sel_counts / max(sel_counts.sum(), 1)).round(6).tolist(),
            "target": ref.round(6).tolist() if ref_name == "target" else None,
            "pool_counts": pool_counts.tolist(),
            "selection_counts": sel_counts.tolist(),
            "samples": _domain_samples(pool, rows, codes, names, sel_counts),
        }
    if pool.has_feature("cluster"):
        assign = np.asarray(pool.clusters(), np.int64)
        centroids = np.load(pool.feature_path("cluster") / "centroids.npy")
        k = len(centroids)
        pool_counts = np.bincount(assign, minlength=k)
        sel_counts = np.bincount(assign[rows], minlength=k)
        target = None
        if target_emb is not None and len(target_emb):
            near = np.argmax(target_emb @ centroids.T.astype(np.float32), axis=1)  # spherical k-means
            t = np.bincount(near, minlength=k)
            target = (t / t.sum()).round(6).tolist()
        out["cluster"] = {
            "names": [str(c) for c in range(k)],
            "pool": (pool_counts / max(pool_counts.sum(), 1)).round(6).tolist(),
            "selection": (sel_counts / max(sel_counts.sum(), 1)).round(6).tolist(),
            "target": target,
            "pool_counts": pool_counts.tolist(),
            "selection_counts": sel_counts.tolist(),
        }
    return out


def _domain_samples(pool: Pool, rows: np.ndarray, codes: np.ndarray, names: list[str], counts: np.ndarray) -> dict:
    """The first ``SAMPLES_PER_DOMAIN`` selected texts (by rank) of each of the ``SAMPLE_DOMAINS``
    most selected domains: what a domain's bar stands for, readable without opening the pool."""
    top = [int(c) for c in np.argsort(-counts, kind="stable")[:SAMPLE_DOMAINS] if counts[c] > 0]
    picked = (
        pl.DataFrame({"row_id": rows, "code": codes[rows], "rank": np.arange(len(rows))})
        .filter(pl.col("code").is_in(top))
        .group_by("code", maintain_order=True)
        .head(SAMPLES_PER_DOMAIN)
    )
    if picked.height == 0:
        return {}
    texts = pool.scan().select("row_id", "text").join(picked.lazy(), on="row_id").sort("rank").collect()
    out: dict[str, list[str]] = {}
    for code, text in texts.select("code", "text").iter_rows():
        out.setdefault(names[code], []).append(text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…")
    return {names[c]: out[names[c]] for c in top if names[c] in out}


def _pca_map(pool: Pool, rows: np.ndarray, target_emb: np.ndarray | None, rng) -> dict | None:
    """PCA fitted on a pool sample (what the axes mean does not depend on the selection)."""
    if not pool.has_feature("embed") or pool.n_records < 3:
        return None
    pool_rows = _sample(np.arange(pool.n_records), MAP_POINTS, rng)
    sel_rows = _sample(rows, MAP_POINTS, rng)
    base = gather_embeddings(pool, pool_rows).astype(np.float64)
    mean = base.mean(axis=0)
    centred = base - mean
    with threadpool_limits(1):  # a 384×384 eigh is ~50 ms on one thread, seconds when BLAS threads contend
        evals, evecs = np.linalg.eigh(centred.T @ centred)
    axes = evecs[:, ::-1][:, :2].T
    explained = (evals[::-1][:2] / max(float(evals.sum()), 1e-300)).round(4).tolist()

    def project(points: np.ndarray) -> list:
        return (np.asarray(points, np.float64) - mean) @ axes.T

    out = {
        "method": "pca",
        "explained_variance": explained,
        "pool": project(base).round(4).tolist(),
        "selection": project(gather_embeddings(pool, sel_rows)).round(4).tolist() if len(sel_rows) else [],
        "target": None,
    }
    if target_emb is not None and len(target_emb):
        t = target_emb[_sample(np.arange(len(target_emb)), MAP_POINTS // 2, rng)]
        out["target"] = project(t).round(4).tolist()
    return out


def _scores(pool: Pool, subset: pl.DataFrame, rows: np.ndarray, target_emb: np.ndarray | None, rng) -> dict:
    """The selector's own scores (recorded for selected rows only), and one score computed now for
    every record — similarity to the nearest target record, else distance to the cluster centroid
    — compared between selected and not-selected samples."""
    out: dict = {"selector": None, "report": None}
    own = subset["score"].drop_nulls().to_numpy()
    if len(own):
        out["selector"] = _stats(own)
    chosen = np.zeros(pool.n_records, bool)
    chosen[rows] = True
    sel = _sample(rows, SCORE_POINTS, rng)
    rest = _sample(np.flatnonzero(~chosen), SCORE_POINTS, rng)
    if target_emb is not None and len(target_emb) and pool.has_feature("embed"):
        import faiss

        index = faiss.IndexFlatIP(target_emb.shape[1])
        index.add(np.ascontiguousarray(target_emb, np.float32))

        def score(r: np.ndarray) -> np.ndarray:
            return index.search(gather_embeddings(pool, r), 1)[0][:, 0] if len(r) else np.zeros(0)

        name, what = "target_similarity", "cosine similarity to the nearest target record"
    elif pool.has_feature("cluster"):
        dist = pool.cluster_distance()

        def score(r: np.ndarray) -> np.ndarray:
            return np.asarray(dist[r], np.float64)

        name, what = "centroid_distance", "cosine distance to the record's cluster centroid"
    else:
        return out
    a, b = score(sel), score(rest)
    both = np.concatenate([a, b]) if len(a) + len(b) else np.zeros(1)
    edges = np.histogram_bin_edges(both, bins=HIST_BINS)
    out["report"] = {"name": name, "description": what, "selected": _stats(a, edges), "not_selected": _stats(b, edges)}
    return out


def _odm(doc: dict) -> dict | None:
    schedule = (doc.get("metrics") or {}).get("weight_schedule")
    if doc["selector"]["name"] != "odm" or not schedule:
        return None
    return {"groups": schedule["groups"], "steps": schedule["steps"], "weights": schedule["weights"]}


def _header(doc: dict) -> dict:
    keys = ("id", "created_at", "pool", "target", "selector", "budget", "budget_note", "warnings", "seed", "mixture",
            "files", "lineage")  # fmt: skip
    return {k: doc.get(k) for k in keys} | {"software": doc.get("software")}


def collect(settings: Settings, path: Path, *, target: str | None = None) -> dict:
    """The report's data for the manifest in ``path``."""
    doc = read_manifest(path)
    pool = manifest_pool(settings, doc)
    subset = pl.read_parquet(path / "subset.parquet", columns=["id", "rank", "weight", "score"])
    rows = _selected_rows(pool, subset)
    the_target, target_note = report_target(settings, doc, target)
    target_emb, emb_note = _target_embeddings(pool, the_target)
    inputs = MetricInputs(pool, the_target, doc["seed"], target_embeddings=target_emb)
    rng = inputs.rng(1)
    manifest_metrics = {
        k: v for k, v in (doc.get("metrics") or {}).items() if k not in ("weight_schedule", "domain_counts")
    }
    return {
        "report_version": 1,
        "header": _header(doc),
        "notes": [n for n in (target_note, emb_note) if n],
        "manifest_metrics": manifest_metrics,
        "metrics": compute_all(inputs, rows),
        "histograms": _histograms(pool, rows, inputs, target_emb),
        "map": _pca_map(pool, rows, target_emb, rng),
        "weights": _stats(subset["weight"].to_numpy()),
        "scores": _scores(pool, subset, rows, target_emb, rng),
        "odm": _odm(doc),
        "evals": saved_evals(settings, doc["id"]),
    }


def pool_domains_of(path: Path) -> pl.DataFrame:
    """(id, weight, domain) of a manifest's subset, nulls as the shared no-domain label."""
    frame = pl.read_parquet(path / "subset.parquet", columns=["id", "weight", "domain"])
    return frame.with_columns(pl.col("domain").fill_null(NO_DOMAIN))


def _finite(value):
    """NaN/inf → None: strict JSON parsers (browsers, jq) reject them."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(data: dict) -> str:
    return json.dumps(_finite(data), sort_keys=True, allow_nan=False, default=str)
