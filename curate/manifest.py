"""Manifest v1: write (atomic, content-addressed), read, verify, export.

The id is a hash of the *inputs* (pool, selector, params, budget, seed, target), so the same request
always names the same folder; the writer never modifies a manifest that already exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curate import __version__, catalog
from curate.config import Settings
from curate.errors import CurateError, InputError, NotFoundError
from curate.io import atomic_path
from curate.pool import Pool
from curate.records import canonical_json, sha256_hex
from curate.selectors.base import Selection
from curate.target import Target

MANIFEST_VERSION = 1
SUBSET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("weight", pa.float64()),
        ("rank", pa.int32()),
        ("domain", pa.string()),
        ("cluster", pa.int32()),
        ("score", pa.float64()),
    ]
)
_PACKAGES = ("numpy", "polars", "pyarrow", "scipy", "scikit-learn", "faiss-cpu", "sentence-transformers", "torch")


class ManifestError(InputError):
    code = "manifest_invalid"


def manifest_id(pool: dict, selector: dict, params: dict, budget: int | float | str, seed: int, target: dict | None):
    """sha256 of the canonical JSON of every input that changes the answer, read from the refs as
    manifest.json records them (so ``verify`` recomputes it from the file alone).

    DESIGN.md's fields {pool.fingerprint, selector, params, budget, seed, target.fingerprint}, plus,
    since issue 16, the pool id and what each pool feature was computed with (config hash, model
    hash, k): two pools of one file clustered differently are two answers. A manifest written before
    (its pool ref has no ``features``) keeps the original formula, so it still verifies.
    """
    extended = "features" in pool
    keys = ("fingerprint", "id", "features") if extended else ("fingerprint",)
    payload = {
        "pool": {k: pool[k] for k in keys},
        "selector": selector,
        "params": params,
        "budget": budget,
        "seed": seed,
        "target": None,
    }
    if target:
        payload["target"] = {"fingerprint": target["fingerprint"]}
        if extended and "features" in target:
            payload["target"]["features"] = target["features"]
    return sha256_hex(canonical_json(payload))


def pool_ref(pool: Pool) -> dict:
    """The manifest's ``pool`` entry: DESIGN.md's {id, name, fingerprint, n_records} + ``features``."""
    return {**pool.ref(), "features": pool.feature_refs()}


def software() -> dict:
    out = {"curate": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _file_entry(path: Path, root: Path, rows: int) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"path": str(path.relative_to(root)), "sha256": h.hexdigest(), "bytes": path.stat().st_size, "rows": rows}


def normalise_weights(weights: np.ndarray | None, k: int) -> np.ndarray:
    """Mean exactly 1 over the rows (uniform when the selector gives none)."""
    if weights is None or k == 0:
        return np.ones(k, np.float64)
    w = np.asarray(weights, np.float64)
    if w.shape != (k,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise CurateError("selector returned invalid weights (must be finite, ≥ 0, not all 0)")
    return w * (k / w.sum())


def build_subset(pool: Pool, selection: Selection) -> pa.Table:
    idx = np.asarray(selection.indices, np.int64)
    k = len(idx)
    if len(np.unique(idx)) != k or (k and (idx.min() < 0 or idx.max() >= pool.n_records)):
        raise CurateError("selector returned duplicate or out-of-range rows")
    order = pl.DataFrame({"row_id": idx, "rank": np.arange(k, dtype=np.int32)})
    meta = pool.scan().select("row_id", "id", "domain").join(order.lazy(), on="row_id").collect().sort("rank")
    cluster = (
        pa.array(np.asarray(pool.clusters())[idx].astype(np.int32))
        if pool.has_feature("cluster")
        else pa.nulls(k, pa.int32())
    )
    scores = selection.scores
    score = pa.array(np.asarray(scores, np.float64)) if scores is not None else pa.nulls(k, pa.float64())
    return pa.table(
        {
            "id": meta["id"].to_arrow().cast(pa.string()),
            "weight": pa.array(normalise_weights(selection.weights, k)),
            "rank": pa.array(np.arange(k, dtype=np.int32)),
            "domain": meta["domain"].to_arrow().cast(pa.string()),
            "cluster": cluster,
            "score": score,
        },
        schema=SUBSET_SCHEMA,
    )


def write_manifest(
    settings: Settings,
    *,
    pool: Pool,
    selector: dict,
    params: dict,
    budget: dict,
    seed: int,
    target: dict | None,
    selection: Selection,
    metrics: dict,
    lineage: dict | None = None,
    warnings: list[str] | None = None,
    budget_note: str | None = None,
    target_source: Target | None = None,
    extras: dict[str, pa.Table] | None = None,
) -> tuple[dict, bool]:
    """Write the manifest unless it exists; returns (manifest.json content, created?).

    ``target_source`` (the resolved target) is copied into the folder (``target/``), so the
    manifest keeps what it was selected against even when the file or pool is gone. ``extras`` are
    further Parquet files beside ``subset.parquet`` (e.g. a dedup's or a filter's ``removed.parquet``),
    checksummed in ``files`` like it.
    """
    ref = pool_ref(pool)
    mid = manifest_id(ref, selector, params, budget["requested"], seed, target)
    dest = settings.manifests_dir / mid
    if (dest / "manifest.json").exists():
        return read_manifest(dest), False
    table = build_subset(pool, selection)
    with atomic_path(dest, directory=True, overwrite=False) as tmp:
        pq.write_table(table, tmp / "subset.parquet", compression="zstd", write_statistics=True)
        files = [_file_entry(tmp / "subset.parquet", tmp, table.num_rows)]
        if target_source is not None:
            copied = target_source.write_copy(tmp, pool)
            files += [_file_entry(tmp / rel, tmp, rows) for rel, rows in copied.pop("files")]
            target = {**target, **copied}
        for name, extra in sorted((extras or {}).items()):
            pq.write_table(extra, tmp / name, compression="zstd")
            files.append(_file_entry(tmp / name, tmp, extra.num_rows))
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "id": mid,
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "pool": ref,
            "target": target,
            "selector": {**selector, "params": params},
            "budget": budget,
            "seed": seed,
            "mixture": selection.mixture,
            "metrics": metrics,
            "files": files,
            "lineage": {"parents": [], **(lineage or {})},
            "software": software(),
            "warnings": list(warnings or []),
        }
        if budget_note:
            doc["budget_note"] = budget_note
        (tmp / "manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    with catalog.session(settings) as db:
        if db.get(catalog.ManifestRow, mid) is None:
            db.add(
                catalog.ManifestRow(
                    id=mid,
                    pool_id=pool.id,
                    selector=selector["name"],
                    selected=table.num_rows,
                    seed=seed,
                    path=str(dest),
                )
            )
    return read_manifest(dest), True


MIN_PREFIX = 4  # 16 bits: unique among a few hundred manifests; an ambiguous prefix is an error, never a guess


def locate(settings: Settings, id_or_dir: str) -> Path:
    """A manifest folder from a path, a full id, or an unambiguous id prefix (≥ 4 characters)."""
    path = Path(id_or_dir).expanduser()
    if (path / "manifest.json").is_file():
        return path.resolve()
    root = settings.manifests_dir
    is_hex = bool(id_or_dir) and all(c in "0123456789abcdef" for c in id_or_dir)
    if is_hex and len(id_or_dir) < MIN_PREFIX:
        raise InputError(f"manifest id prefix '{id_or_dir}' is too short: give at least {MIN_PREFIX} characters",
                         field="manifest")  # fmt: skip
    if is_hex and root.is_dir():
        hits = [p for p in root.iterdir() if p.name.startswith(id_or_dir) and (p / "manifest.json").exists()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InputError(f"manifest id prefix '{id_or_dir}' is ambiguous ({len(hits)} matches)", field="manifest")
    raise NotFoundError(f"no manifest '{id_or_dir}' (not a folder with manifest.json, nor a known id)")


def list_manifests(settings: Settings, *, pool: str | None = None, selector: str | None = None) -> list[dict]:
    """Catalogued manifests whose folder exists, oldest first, with the pool's name as recorded."""
    pool_id = pool
    if pool:
        try:
            pool_id = catalog.get_pool(settings, pool).id
        except NotFoundError:
            pool_id = pool  # the id of a replaced pool still names its manifests
    out = []
    for row in catalog.list_manifests(settings, pool_id=pool_id, selector=selector):
        folder = Path(row.path)
        if not (folder / "manifest.json").is_file():
            continue
        doc = read_manifest(folder)
        out.append(
            {
                "id": row.id,
                "pool": doc["pool"]["name"],
                "pool_id": row.pool_id,
                "selector": row.selector,
                "selected": row.selected,
                "n_records": doc["pool"]["n_records"],
                "seed": row.seed,
                "created_at": row.created_at.isoformat() if row.created_at else doc.get("created_at"),
                "path": str(folder),
            }
        )
    return out


def read_manifest(path: Path) -> dict:
    try:
        doc = json.loads((path / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"unreadable manifest.json: {exc}", file=str(path / "manifest.json")) from None
    doc["path"] = str(path)
    return doc


def verify(path: Path) -> list[str]:
    """Every problem found (empty = valid): checksums, sizes, rows, id, weights, ranks."""
    doc = read_manifest(path)
    problems = []
    for entry in doc.get("files", []):
        file = path / entry["path"]
        if not file.is_file():
            problems.append(f"{entry['path']}: missing")
            continue
        actual = _file_entry(file, path, entry.get("rows", 0))
        if actual["bytes"] != entry["bytes"]:
            problems.append(f"{entry['path']}: {actual['bytes']} bytes, manifest says {entry['bytes']}")
        if actual["sha256"] != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 {actual['sha256'][:12]}…, manifest says {entry['sha256'][:12]}…")
    sel = doc["selector"]
    expected = manifest_id(
        doc["pool"],
        {k: v for k, v in sel.items() if k != "params"},
        sel["params"],
        doc["budget"]["requested"],
        doc["seed"],
        doc.get("target"),
    )
    if expected != doc["id"]:
        problems.append(f"id {doc['id'][:12]}… does not match its contents (expected {expected[:12]}…)")
    if not problems:
        try:
            table = pq.read_table(path / "subset.parquet")
        except Exception as exc:  # corrupt Parquet whose checksum was also rewritten
            return [f"subset.parquet unreadable: {exc}"]
        if table.schema != SUBSET_SCHEMA:
            problems.append("subset.parquet schema differs from manifest v1")
        elif table.num_rows:
            w = table["weight"].to_numpy()
            if abs(w.mean() - 1.0) > 1e-9 or (w < 0).any():
                problems.append(f"weights must be ≥ 0 with mean 1, mean is {w.mean():.12f}")
            if not np.array_equal(table["rank"].to_numpy(), np.arange(table.num_rows)):
                problems.append("rank column is not 0..n-1 in order")
        if table.num_rows != doc["budget"]["selected"]:
            problems.append(f"subset has {table.num_rows} rows, manifest says {doc['budget']['selected']}")
    return problems


def export(settings: Settings, path: Path, fmt: str, out: Path, with_text: bool = False) -> Path:
    """Write the subset as parquet/jsonl/csv, streamed, atomically. ``with_text`` adds each record's
    text and its original fields (kept in the pool's ``meta`` JSON) as columns of their own; a CSV
    keeps nested fields (lists, objects) only in the ``meta`` JSON column, which it then also has."""
    if fmt not in ("parquet", "jsonl", "csv"):
        raise InputError(f"unknown format '{fmt}'; use parquet, jsonl or csv", field="format")
    doc = read_manifest(path)
    frame = pl.scan_parquet(path / "subset.parquet")
    if with_text:
        pool = Pool.load(settings, doc["pool"]["id"])
        frame = frame.join(pool.scan().select("id", "text", "meta"), on="id", how="left").sort("rank")
        frame = _with_original_fields(frame, fmt)
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            frame.sink_parquet(tmp)
        elif fmt == "jsonl":
            frame.sink_ndjson(tmp)
        else:
            frame.sink_csv(tmp)
    return out


def _with_original_fields(frame: pl.LazyFrame, fmt: str) -> pl.LazyFrame:
    """Unpack ``meta`` into columns; a field named like a subset column becomes ``field_<name>``."""
    metas = frame.select("meta").collect()["meta"].drop_nulls()
    if metas.is_empty():
        return frame.drop("meta")
    dtype = metas.str.json_decode(infer_schema_length=None).dtype
    taken = set(SUBSET_SCHEMA.names) | {"text"}
    fields = [f for f in dtype.fields if fmt != "csv" or not f.dtype.is_nested()]
    columns = [pl.col("meta").str.json_decode(dtype).struct.field(f.name).alias(
        f"field_{f.name}" if f.name in taken else f.name) for f in fields]  # fmt: skip
    keep_meta = len(fields) < len(dtype.fields)
    return frame.with_columns(columns) if keep_meta else frame.with_columns(columns).drop("meta")


def text_export(settings: Settings, path: Path, fmt: str = "parquet") -> Path:
    """The subset with texts and original fields, rendered once per manifest (manifests are immutable)
    under the cache: what the REST download with ``with_text`` streams and the data loaders read."""
    cached = settings.cache_dir / "exports" / path.name / f"subset-text.{fmt}"
    if not cached.is_file():
        export(settings, path, fmt, cached, with_text=True)
    return cached
