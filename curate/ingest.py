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
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from curate import catalog
from curate.config import Settings
from curate.errors import ConflictError, InputError
from curate.executors import ExecutorSpec, use_executor
from curate.io import write_json
from curate.pool import Pool, replaced_feature
from curate.readers import read_chunks
from curate.records import RECORDS_SCHEMA, Fingerprint, canonical_json, sha256_hex
from curate.stages.base import Stage
from curate.stages.cluster import ClusterParams, ClusterStage
from curate.stages.embed import EmbedParams, EmbedStage, FieldVectorsParams, FieldVectorsStage, check_params
from curate.stages.ngrams import NgramParams, NgramStage
from curate.streams import Encoding, ReadLimits
from curate.validate import RecordValidator

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
    model: str | None = Field(None, description="Shortcut for embedding.model (sentence-transformers name or path).")
    embedding: EmbedParams = Field(
        default_factory=EmbedParams, description="Embedding model, backend (torch, onnx, onnx-int8, static), device."
    )
    embedding_field: str | None = Field(None, description="Bring your own vectors: a list-of-float field.")
    clusters: int | None = Field(
        None, ge=0, description="k-means clusters on the embeddings; default sqrt(n), 0 = none."
    )
    ngrams: NgramParams = Field(default_factory=NgramParams)
    drop_duplicates: bool = Field(False, description="Drop later records whose text exactly repeats.")
    on_duplicate_id: Literal["error", "keep-first"] = "error"
    replace: bool = Field(False, description="Replace an existing pool of the same name.")
    seed: int = Field(0, description="Seed of the clustering stage.")
    executor: Literal["local", "ray"] | ExecutorSpec = Field(
        "local", description="Where the feature stages run: local, ray, or {kind: ray, address: ...}."
    )
    chunk_rows: int = Field(50_000, ge=1, description="Most rows per streamed chunk (any format).")
    chunk_bytes: int = Field(16 << 20, ge=1024, description="Bytes per streamed block (JSONL, CSV).")
    encoding: Encoding = Field("utf-8", description="Text encoding of JSONL/CSV input (latin-1, cp1252, utf-16, ...).")
    max_expanded_bytes: int | None = Field(
        None, ge=1, description="Refuse input whose decompressed size passes this (None = no limit)."
    )
    max_record_bytes: int | None = Field(
        None, ge=1, description="Refuse a line / record / text longer than this (None = no limit)."
    )

    def read_limits(self) -> ReadLimits:
        return ReadLimits(max_expanded_bytes=self.max_expanded_bytes, max_record_bytes=self.max_record_bytes)

    @model_validator(mode="after")
    def _one_model(self) -> IngestParams:
        """``model`` and ``embedding.model`` are one setting: either spelling, never two answers."""
        if self.model is None:
            self.model = self.embedding.model
        elif self.model != self.embedding.model:
            if "model" in self.embedding.model_fields_set:
                raise ValueError(f"model '{self.model}' and embedding.model '{self.embedding.model}' disagree")
            self.embedding = self.embedding.model_copy(update={"model": self.model})
        return self


def _pool_id(name: str, fingerprint: str, v: RecordValidator, params: IngestParams) -> str:
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
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"invalid pool name '{name}'", field="pool")
    if params.embed and not params.embedding_field:
        check_params(params.embedding)  # fail on a bad model, runtime or device before reading anything
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
        report["warnings"] = []
        with use_executor(params.executor):
            report["stages"] = _run_stages(pool, params, parts, progress, report["warnings"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(vectors_tmp, ignore_errors=True)
    report["pool"] = {**pool.ref(), "path": str(pool.dir), "fields": pool.info["fields"]}
    return report


def _read_into(tmp: Path, vectors_tmp: Path, path: Path, name: str, params: IngestParams, progress: ProgressFn):
    v = RecordValidator(path, params)
    fp = Fingerprint()
    writer = None
    n_parts = 0
    t0 = time.perf_counter()
    progress("read", 0, 0)
    try:
        for chunk in read_chunks(
            path,
            chunk_rows=params.chunk_rows,
            chunk_bytes=params.chunk_bytes,
            text_field=params.text_field,
            encoding=params.encoding,
            limits=params.read_limits(),
        ):
            frame, vectors = v.process(chunk)
            fp.update(frame)
            if writer is None:
                # Dictionary encoding only pays for the low-cardinality domain column.
                writer = pq.ParquetWriter(
                    tmp / "records.parquet", RECORDS_SCHEMA, compression="zstd", use_dictionary=["domain"]
                )
            writer.write_table(frame.to_arrow().cast(RECORDS_SCHEMA))
            if vectors is not None:
                vectors_tmp.mkdir(exist_ok=True)
                np.save(vectors_tmp / f"part-{n_parts:06d}.npy", vectors)
                n_parts += 1
            estimate = round(v.rows / chunk.fraction) if 0 < chunk.fraction < 1 else 0  # from the bytes read
            progress("read", v.rows, estimate)
    finally:
        if writer is not None:
            writer.close()
    progress("read", v.rows, v.rows)
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
                "encoding": params.encoding,
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


def _run_stages(
    pool: Pool, params: IngestParams, vector_parts: list[Path] | None, progress: ProgressFn, warnings: list[str]
) -> dict:
    stages: dict[str, dict] = {}

    def run(kind: str, stage: Stage) -> dict:
        before = pool.stage_info(kind)
        out = stage.run(pool, lambda done, total: progress(kind, done, total))
        if pool.set_feature(kind, Path(out["path"])) and before is not None:
            warnings.append(replaced_feature(kind, before, out))
        return out

    stages["ngrams"] = run("ngrams", NgramStage(params.ngrams))
    if params.embedding_field:
        stages["embed"] = run(
            "embed", FieldVectorsStage(FieldVectorsParams(field=params.embedding_field), vector_parts)
        )
    elif params.embed:
        stages["embed"] = run("embed", EmbedStage(params.embedding))
    if "embed" in stages and params.clusters != 0:
        k = params.clusters if params.clusters is not None else (pool.stage_info("cluster") or {}).get("k")
        cluster = ClusterStage(ClusterParams(k=k, seed=params.seed), Path(stages["embed"]["path"]))
        stages["cluster"] = run("cluster", cluster)
    return stages
