"""Ingest: read → validate → normalise → duplicate report → fingerprint → commit → feature stages.

Records are written to a temp folder while streaming; only a fully valid input is renamed into
place and registered, so any error or Ctrl-C leaves the home exactly as it was.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.lib.format import open_memmap
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from curate import catalog
from curate.config import Settings
from curate.errors import ConflictError, InputError
from curate.io import Chunk, read_chunks, write_json
from curate.pool import Pool
from curate.records import (
    Fingerprint,
    SeenSet,
    canonical_json,
    generated_ids,
    hash_prefix_u64,
    occurrence_in_chunk,
    sha256_hex,
    text_hashes,
)
from curate.stages.base import Stage, StageParams
from curate.stages.cluster import ClusterParams, ClusterStage
from curate.stages.embed import DEFAULT_MODEL, EmbedParams, EmbedStage, resolve_model
from curate.stages.ngrams import NgramParams, NgramStage

RECORDS_SCHEMA = pa.schema(
    [
        ("row_id", pa.int64()),
        ("id", pa.string()),
        ("text", pa.string()),
        ("domain", pa.string()),
        ("text_hash", pa.binary()),
        ("meta", pa.string()),
    ]
)
ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


class IngestParams(BaseModel):
    """How to read a file into a pool; shared by the CLI, pipeline files and the REST API."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = Field("text", description="Field holding the record text.")
    id_field: str | None = Field(
        None, description="Field holding a unique id; default 'id' if present, else ids from the text hash."
    )
    domain_field: str | None = Field(
        None, description="Field holding the domain/task/source; default 'domain' if present."
    )
    embed: bool = Field(True, description="Compute sentence embeddings.")
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or local path.")
    embedding_field: str | None = Field(None, description="Bring your own vectors: a list-of-float field.")
    clusters: int | None = Field(
        None, ge=0, description="k-means clusters on the embeddings; default sqrt(n), 0 = none."
    )
    ngrams: NgramParams = Field(default_factory=NgramParams)
    drop_duplicates: bool = Field(False, description="Drop later records whose text exactly repeats.")
    on_duplicate_id: Literal["error", "keep-first"] = "error"
    replace: bool = Field(False, description="Replace an existing pool of the same name.")
    seed: int = Field(0, description="Seed of the clustering stage.")
    executor: Literal["local", "ray"] = "local"
    chunk_rows: int = Field(50_000, ge=1, description="Rows per streamed chunk (Parquet).")
    chunk_bytes: int = Field(16 << 20, ge=1024, description="Bytes per streamed block (JSONL, CSV).")


class _Validator:
    """Per-chunk validation and normalisation with state carried across chunks."""

    def __init__(self, path: Path, params: IngestParams) -> None:
        self.path, self.p = path, params
        self.id_field: str | None = None
        self.domain_field: str | None = None
        self.resolved = False
        self.ids = SeenSet()
        self.texts = SeenSet()
        self.duplicate_records = 0
        self.dropped_duplicates = 0
        self.dropped_duplicate_ids = 0
        self.rows = 0

    def _err(self, msg: str, line: int | None, field: str | None = None) -> InputError:
        return InputError(msg, file=str(self.path), line=int(line) if line is not None else None, field=field)

    def _resolve_fields(self, frame: pl.DataFrame, line: int) -> None:
        cols = set(frame.columns)
        for attr, default in (("id_field", "id"), ("domain_field", "domain")):
            given = getattr(self.p, attr)
            if given is not None and given not in cols:
                others = ", ".join(sorted(cols - {self.p.text_field})) or "(none)"
                raise self._err(f"field not found; fields present: {others}", line, given)
            setattr(self, attr, given if given is not None else (default if default in cols else None))
        if self.p.embedding_field and self.p.embedding_field not in cols:
            raise self._err("field not found", line, self.p.embedding_field)
        self.resolved = True

    def _first(self, mask: pl.Series | np.ndarray, lines: np.ndarray) -> int:
        return int(lines[int(np.flatnonzero(np.asarray(mask))[0])])

    def process(self, chunk: Chunk) -> tuple[pl.DataFrame, np.ndarray | None]:
        frame, lines = chunk.frame, chunk.lines
        tf = self.p.text_field
        if not self.resolved:
            self._resolve_fields(frame, int(lines[0]))
        if tf not in frame.columns or frame[tf].null_count() == frame.height:
            present = ", ".join(sorted(c for c in frame.columns if c != tf)) or "(none)"
            raise self._err(f"missing in every record; fields present: {present}", lines[0], tf)
        text = frame[tf]
        if text.dtype != pl.String:
            raise self._err(f"text must be a string, got {text.dtype}", lines[0], tf)
        if text.null_count():
            raise self._err("missing or null", self._first(text.is_null(), lines), tf)
        ids = self._ids(frame, lines)
        empty = text.str.strip_chars().str.len_chars() == 0
        if empty.any():
            at = int(np.flatnonzero(empty.to_numpy())[0])
            who = f" (id '{ids[at]}')" if ids is not None else ""
            raise self._err(f"record{who} has empty text", lines[at], tf)
        vectors = self._vectors(frame, lines)
        out = pl.DataFrame({"id": ids, "text": text}) if ids is not None else pl.DataFrame({"text": text})
        out = out.with_columns(self._domain(frame), self._meta(frame))
        keep = np.ones(frame.height, bool)
        if ids is not None:
            keep &= self._check_ids(ids, lines)
        hashes = text_hashes(text)
        out = out.with_columns(hashes)
        keys = hash_prefix_u64(hashes)
        seen_before, _, prior = self.texts.lookup(keys)
        in_chunk = np.zeros(len(keys), np.int64)
        in_chunk[keep] = occurrence_in_chunk(keys[keep])
        dup = keep & (seen_before | (in_chunk > 0))
        self.duplicate_records += int(dup.sum())
        if self.p.drop_duplicates:
            self.dropped_duplicates += int(dup.sum())
            keep &= ~dup
        if ids is None:
            out = out.with_columns(generated_ids(hashes, prior + in_chunk))
        self.texts.add(keys[keep], lines[keep])
        out = out.filter(pl.Series(keep))
        n = out.height
        out = out.with_columns(pl.Series("row_id", np.arange(self.rows, self.rows + n, dtype=np.int64)))
        self.rows += n
        return out.select(RECORDS_SCHEMA.names), (vectors[keep] if vectors is not None else None)

    def _ids(self, frame: pl.DataFrame, lines: np.ndarray) -> pl.Series | None:
        if self.id_field is None:
            return None
        col = frame[self.id_field]
        if col.null_count():
            raise self._err("missing or null", self._first(col.is_null(), lines), self.id_field)
        if col.dtype == pl.String:
            return col.alias("id")
        if col.dtype.is_integer():
            return col.cast(pl.String).alias("id")
        raise self._err(f"id must be a string or an integer, got {col.dtype}", lines[0], self.id_field)

    def _check_ids(self, ids: pl.Series, lines: np.ndarray) -> np.ndarray:
        keys = ids.hash(seed=7).to_numpy().astype(np.uint64)
        seen, first, _ = self.ids.lookup(keys)
        occ = occurrence_in_chunk(keys)
        dup = seen | (occ > 0)
        if dup.any() and self.p.on_duplicate_id == "error":
            at = int(np.flatnonzero(dup)[0])
            first_line = int(first[at]) if seen[at] else int(lines[int(np.flatnonzero(keys == keys[at])[0])])
            raise self._err(
                f"duplicate id '{ids[at]}' (first at line {first_line}); "
                "pass --on-duplicate-id keep-first to keep the first occurrence",
                lines[at],
                self.id_field,
            )
        self.dropped_duplicate_ids += int(dup.sum())
        self.ids.add(keys[~dup], lines[~dup])
        return ~dup

    def _domain(self, frame: pl.DataFrame) -> pl.Series:
        if self.domain_field is None:
            return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("domain")
        col = frame[self.domain_field]
        if not (col.dtype in (pl.String, pl.Categorical, pl.Boolean) or col.dtype.is_numeric()):
            raise self._err(f"domain must be a string or a number, got {col.dtype}", None, self.domain_field)
        col = col.cast(pl.String)
        return pl.when(col.str.len_chars() == 0).then(None).otherwise(col).alias("domain")

    def _meta(self, frame: pl.DataFrame) -> pl.Expr | pl.Series:
        core = {self.p.text_field, self.id_field, self.domain_field, self.p.embedding_field}
        extra = [c for c in frame.columns if c not in core]
        if not extra:
            return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("meta")
        return frame.select(pl.struct(extra).struct.json_encode().alias("meta")).to_series()

    def _vectors(self, frame: pl.DataFrame, lines: np.ndarray) -> np.ndarray | None:
        name = self.p.embedding_field
        if name is None:
            return None
        col = frame[name]
        if not isinstance(col.dtype, pl.List | pl.Array) or not col.dtype.inner.is_numeric():
            raise self._err(f"expected a list of numbers, got {col.dtype}", lines[0], name)
        if col.null_count():
            raise self._err("missing or null", self._first(col.is_null(), lines), name)
        lengths = col.list.len().to_numpy() if isinstance(col.dtype, pl.List) else None
        if lengths is not None and (lengths != lengths[0]).any():
            at = int(np.flatnonzero(lengths != lengths[0])[0])
            raise self._err(f"vector has {lengths[at]} numbers, expected {lengths[0]}", lines[at], name)
        flat = col.explode() if isinstance(col.dtype, pl.List) else col.arr.explode()
        if flat.null_count():
            raise self._err("vector contains null", lines[0], name)
        vecs = flat.cast(pl.Float64).to_numpy().reshape(frame.height, -1)
        norms = np.linalg.norm(vecs, axis=1)
        bad = ~np.isfinite(norms) | (norms == 0)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise self._err("vector is zero or not finite", lines[at], name)
        return (vecs / norms[:, None]).astype(np.float32)


def _pool_id(name: str, fingerprint: str, v: _Validator, params: IngestParams) -> str:
    mapping = {
        "name": name,
        "fingerprint": fingerprint,
        "text": params.text_field,
        "id": v.id_field,
        "domain": v.domain_field,
        "drop_duplicates": params.drop_duplicates,
        "on_duplicate_id": params.on_duplicate_id,
    }
    return sha256_hex(canonical_json(mapping))[:16]


def ingest(
    settings: Settings,
    path: str | Path,
    name: str,
    params: IngestParams | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Ingest ``path`` as pool ``name`` and compute its features; returns a report."""
    params = params or IngestParams()
    progress = progress or (lambda stage, done, total: None)
    if params.executor != "local":
        raise InputError("executor 'ray' is not available in this version; use --executor local", field="executor")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"invalid pool name '{name}'", field="pool")
    if params.embed and not params.embedding_field:
        resolve_model(params.model)  # fail on a bad model before reading anything
    path = Path(path)
    started = time.perf_counter()
    settings.pools_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.pools_dir / f".tmp-ingest-{uuid.uuid4().hex[:10]}"
    vectors_tmp = settings.pools_dir / f".tmp-vectors-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        report, pool_id, fingerprint = _read_into(tmp, vectors_tmp, path, name, params, progress)
        pool = _commit(settings, tmp, name, pool_id, fingerprint, report, params)
        report["read"]["seconds"] = round(time.perf_counter() - started, 3)
        parts = sorted(vectors_tmp.glob("*.npy")) if vectors_tmp.exists() else None
        report["stages"] = _run_stages(pool, params, parts, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(vectors_tmp, ignore_errors=True)
    report["pool"] = {**pool.ref(), "path": str(pool.dir), "fields": pool.info["fields"]}
    return report


def _read_into(tmp: Path, vectors_tmp: Path, path: Path, name: str, params: IngestParams, progress: ProgressFn):
    v = _Validator(path, params)
    fp = Fingerprint()
    writer = None
    n_parts = 0
    t0 = time.perf_counter()
    try:
        for chunk in read_chunks(
            path, chunk_rows=params.chunk_rows, chunk_bytes=params.chunk_bytes, text_field=params.text_field
        ):
            frame, vectors = v.process(chunk)
            fp.update(frame)
            if writer is None:
                writer = pq.ParquetWriter(tmp / "records.parquet", RECORDS_SCHEMA, compression="zstd")
            writer.write_table(frame.to_arrow().cast(RECORDS_SCHEMA))
            if vectors is not None:
                vectors_tmp.mkdir(exist_ok=True)
                np.save(vectors_tmp / f"part-{n_parts:06d}.npy", vectors)
                n_parts += 1
            progress("read", v.rows, 0)
    finally:
        if writer is not None:
            writer.close()
    if v.rows == 0:
        raise InputError("no records in file", file=str(path))
    fingerprint = fp.hexdigest()
    pool_id = _pool_id(name, fingerprint, v, params)
    seconds = time.perf_counter() - t0
    report = {
        "read": {
            "file": str(path),
            "records": v.rows,
            "records_per_s": round(v.rows / seconds, 1) if seconds else None,
        },
        "duplicates": {
            "duplicate_text_records": v.duplicate_records,
            "dropped_duplicate_texts": v.dropped_duplicates,
            "dropped_duplicate_ids": v.dropped_duplicate_ids,
        },
        "fields": {
            "text": params.text_field,
            "id": v.id_field or "(generated from text hash)",
            "domain": v.domain_field,
        },
    }
    return report, pool_id, fingerprint


def _commit(settings, tmp, name, pool_id, fingerprint, report, params) -> Pool:
    """Move the records into place and register the pool, unless an identical pool exists."""
    dest = settings.pools_dir / pool_id
    with catalog.session(settings) as db:
        existing = db.scalar(select(catalog.PoolRow).where(catalog.PoolRow.name == name))
        if existing is not None and existing.id == pool_id:
            return Pool.load(settings, pool_id)  # same name, same content: only stages may be missing
        if existing is not None and not params.replace:
            raise ConflictError(
                f"pool '{name}' already exists with different content or field mapping "
                f"(fingerprint {existing.fingerprint[:12]}…); pass --replace or choose another name",
                field="pool",
            )
        if not dest.exists():
            info = {
                "id": pool_id,
                "name": name,
                "fingerprint": fingerprint,
                "n_records": report["read"]["records"],
                "fields": report["fields"],
                "source": report["read"]["file"],
                "duplicates": report["duplicates"],
                "features": {},
            }
            write_json(tmp / "pool.json", info)
            try:
                tmp.rename(dest)
            except OSError:  # a concurrent ingest of the same content got there first
                if not (dest / "pool.json").exists():
                    raise
        if existing is not None:  # --replace: the old files stay for the manifests that cite them
            db.delete(existing)
            db.flush()
        db.add(
            catalog.PoolRow(
                id=pool_id,
                name=name,
                fingerprint=fingerprint,
                n_records=report["read"]["records"],
                path=str(dest),
                info={"fields": report["fields"], "duplicates": report["duplicates"]},
            )
        )
    return Pool.load(settings, pool_id)


def _run_stages(pool: Pool, params: IngestParams, vector_parts: list[Path] | None, progress: ProgressFn) -> dict:
    stages: dict[str, dict] = {}

    def run(kind: str, stage: Stage) -> dict:
        out = stage.run(pool, lambda done, total: progress(kind, done, total))
        pool.set_feature(kind, Path(out["path"]))
        return out

    stages["ngrams"] = run("ngrams", NgramStage(params.ngrams))
    if params.embedding_field:
        stages["embed"] = run("embed", _FieldVectors(_FieldParams(field=params.embedding_field), vector_parts))
    elif params.embed:
        stages["embed"] = run("embed", EmbedStage(EmbedParams(model=params.model)))
    if "embed" in stages and params.clusters != 0:
        cluster = ClusterStage(ClusterParams(k=params.clusters, seed=params.seed), Path(stages["embed"]["path"]))
        stages["cluster"] = run("cluster", cluster)
    return stages


class _FieldParams(StageParams):
    field: str


class _FieldVectors(Stage):
    """Embeddings the caller brought in a record field (already validated and L2-normalised)."""

    name = "embed"

    def __init__(self, params: _FieldParams, parts: list[Path] | None) -> None:
        super().__init__(params)
        self.parts = parts or []

    def compute(self, pool: Pool, out: Path, progress) -> dict:
        if not self.parts:
            raise InputError("no vectors were read; re-run ingest of the source file", field=self.params.field)
        dim = np.load(self.parts[0], mmap_mode="r").shape[1]
        matrix = open_memmap(out / "embeddings.npy", mode="w+", dtype=np.float32, shape=(pool.n_records, dim))
        start = 0
        for part in self.parts:
            block = np.load(part)
            if block.shape[1] != dim:
                raise InputError(f"vectors change length from {dim} to {block.shape[1]}", field=self.params.field)
            matrix[start : start + len(block)] = block
            start += len(block)
        matrix.flush()
        return {"model": f"field:{self.params.field}", "dim": int(dim), "encoded": 0, "cache_hits": 0}
