"""Request and response models: the OpenAPI schema (with examples) is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.executors import ExecutorSpec
from curate.stages.embed import Backend, Device
from curate.streams import Encoding

JOB_ID = "9b2f6c0d4e8a4f1fb3c1d2e3f4a5b6c7"
MANIFEST_ID = "3f1a9c" + "0" * 58
_EXECUTOR = (
    "Where the job's per-record work runs: {kind: local} (default) or {kind: ray, address: ...}; "
    "the result is the same either way."
)


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str = Field(examples=["papers.jsonl:12: field 'text': missing or null"])
    details: dict[str, Any] = Field(default_factory=dict, examples=[{"file": "papers.jsonl", "line": 12}])


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def errors(*codes: int) -> dict:
    """``responses=`` for a route: every listed status documents the error envelope."""
    text = {
        400: "Bad request",
        401: "Missing or unknown bearer token",
        403: "Token lacks the scope, or the path is outside the allowed roots",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Body larger than the configured limit",
        415: "Unsupported content type",
        422: "Invalid input (the message names file, line and field)",
    }
    return {code: {"model": ErrorEnvelope, "description": text.get(code, "Error")} for code in codes}


class PoolOptions(BaseModel):
    """How records map to fields; the same options as ``curate ingest``."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = Field("text", max_length=200)
    id_field: str | None = Field(None, max_length=200, description="Default: 'id' if present, else text hashes.")
    domain_field: str | None = Field(None, max_length=200, description="Default: 'domain' if present.")
    embedding_field: str | None = Field(None, max_length=200, description="A list-of-float field to use as vectors.")
    drop_duplicates: bool = False
    on_duplicate_id: Literal["error", "keep-first"] = "error"
    replace: bool = Field(False, description="Replace an existing pool of the same name.")
    chunk_rows: int = Field(50_000, ge=1, le=10_000_000, description="Rows per streamed chunk (Parquet).")
    chunk_bytes: int = Field(16 << 20, ge=1024, le=1 << 30, description="Bytes per streamed block (JSONL, CSV).")
    encoding: Encoding = Field("utf-8", max_length=40, description="Text encoding of JSONL/CSV (e.g. latin-1).")


class PoolFromPath(PoolOptions):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", examples=["papers"])
    path: str = Field(
        min_length=1, max_length=4000, description="A file under one of CURATE_POOL_ROOTS.", examples=["papers.jsonl"]
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "papers", "path": "/data/papers.jsonl", "domain_field": "topic"}]},
    )


class PoolOut(BaseModel):
    id: str = Field(examples=["5c1e0a9d2b7f4e31"])
    name: str = Field(examples=["papers"])
    fingerprint: str
    n_records: int = Field(examples=[427])
    created_at: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, examples=[{"text": "text", "id": "id", "domain": "topic"}])
    features: list[str] = Field(default_factory=list, examples=[["ngrams", "embed", "cluster"]])
    source: dict[str, Any] = Field(default_factory=dict)


class PoolList(BaseModel):
    data: list[PoolOut]
    count: int


class IngestRequest(BaseModel):
    """Feature stages to compute for a pool (cached stages are skipped)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"embed": True, "clusters": 8}]})

    embed: bool = Field(True, description="Compute sentence embeddings.")
    model: str | None = Field(None, max_length=500, description="Model name (default all-MiniLM-L6-v2).")
    backend: Backend | None = Field(None, description="Embedding backend (default torch); see docs/embeddings.md.")
    device: Device | None = Field(None, description="auto (default), cpu or cuda.")
    clusters: int | None = Field(None, ge=0, le=100_000, description="k-means clusters; default sqrt(n), 0 = none.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    executor: ExecutorSpec | None = Field(None, description=_EXECUTOR)


class SelectionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"pool": "papers", "selector": "stratified", "budget": 100, "params": {}, "seed": 0}]
        },
    )

    pool: str = Field(min_length=1, max_length=200, description="Pool name or id.")
    selector: str = Field(min_length=1, max_length=64, examples=["random"])
    budget: int | float | str = Field(description="Record count (100) or fraction of the pool (0.1).", examples=[100])
    target: str | None = Field(
        None, max_length=4000, description="A pool name/id, or a texts file under one of CURATE_POOL_ROOTS."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Selector parameters (see /v1/selectors).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    executor: ExecutorSpec | None = Field(None, description=_EXECUTOR)


class JobOut(BaseModel):
    id: str = Field(examples=[JOB_ID])
    kind: Literal["ingest", "selection"] | str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1, examples=[0.42])
    stage: str | None = Field(None, examples=["embed"])
    message: str | None = Field(None, examples=["embed: 4096/10000 records"])
    result: dict[str, Any] | None = Field(None, examples=[{"manifest_id": MANIFEST_ID, "selected": 100}])
    error: dict[str, Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    cancel_requested: bool = False
    attempts: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class JobList(BaseModel):
    data: list[JobOut]
    count: int


class ManifestSummary(BaseModel):
    id: str = Field(examples=[MANIFEST_ID])
    pool_id: str
    selector: str = Field(examples=["stratified"])
    selected: int = Field(examples=[100])
    seed: int
    created_at: str | None = None


class ManifestList(BaseModel):
    data: list[ManifestSummary]
    count: int
