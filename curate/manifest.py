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


def manifest_id(pool_fp: str, selector: dict, params: dict, budget: int | float, seed: int, target_fp: str | None):
    payload = {
        "pool": {"fingerprint": pool_fp},
        "selector": selector,
        "params": params,
        "budget": budget,
        "seed": seed,
        "target": {"fingerprint": target_fp} if target_fp else None,
    }
    return sha256_hex(canonical_json(payload))


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
    extras: dict[str, pa.Table] | None = None,
) -> tuple[dict, bool]:
    """Write the manifest unless it exists; returns (manifest.json content, created?).

    ``extras`` are further Parquet files beside ``subset.parquet`` (e.g. a dedup's or a filter's
    ``removed.parquet``), checksummed in ``files`` like it."""
    mid = manifest_id(pool.fingerprint, selector, params, budget["requested"], seed, target and target["fingerprint"])
    dest = settings.manifests_dir / mid
    if (dest / "manifest.json").exists():
        return read_manifest(dest), False
    table = build_subset(pool, selection)
    with atomic_path(dest, directory=True, overwrite=False) as tmp:
        pq.write_table(table, tmp / "subset.parquet", compression="zstd", write_statistics=True)
        files = [_file_entry(tmp / "subset.parquet", tmp, table.num_rows)]
        for name, extra in sorted((extras or {}).items()):
            pq.write_table(extra, tmp / name, compression="zstd")
            files.append(_file_entry(tmp / name, tmp, extra.num_rows))
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "id": mid,
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "pool": pool.ref(),
            "target": target,
            "selector": {**selector, "params": params},
            "budget": budget,
            "seed": seed,
            "mixture": selection.mixture,
            "metrics": metrics,
            "files": files,
            "lineage": {"parents": [], **(lineage or {})},
            "software": software(),
        }
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


def locate(settings: Settings, id_or_dir: str) -> Path:
    """A manifest folder from a path, a full id, or an unambiguous id prefix (≥ 6 characters)."""
    path = Path(id_or_dir).expanduser()
    if (path / "manifest.json").is_file():
        return path.resolve()
    root = settings.manifests_dir
    if len(id_or_dir) >= 6 and root.is_dir() and all(c in "0123456789abcdef" for c in id_or_dir):
        hits = [p for p in root.iterdir() if p.name.startswith(id_or_dir) and (p / "manifest.json").exists()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InputError(f"manifest id prefix '{id_or_dir}' is ambiguous ({len(hits)} matches)", field="manifest")
    raise NotFoundError(f"no manifest '{id_or_dir}' (not a folder with manifest.json, nor a known id)")


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
        doc["pool"]["fingerprint"],
        {k: v for k, v in sel.items() if k != "params"},
        sel["params"],
        doc["budget"]["requested"],
        doc["seed"],
        (doc.get("target") or {}).get("fingerprint"),
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
    """Write the subset as parquet/jsonl/csv (optionally with the text), streamed, atomically."""
    if fmt not in ("parquet", "jsonl", "csv"):
        raise InputError(f"unknown format '{fmt}'; use parquet, jsonl or csv", field="format")
    doc = read_manifest(path)
    frame = pl.scan_parquet(path / "subset.parquet")
    if with_text:
        pool = Pool.load(settings, doc["pool"]["id"])
        frame = frame.join(pool.scan().select("id", "text"), on="id", how="left").sort("rank")
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            frame.sink_parquet(tmp)
        elif fmt == "jsonl":
            frame.sink_ndjson(tmp)
        else:
            frame.sink_csv(tmp)
    return out
