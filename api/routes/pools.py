"""Pools: create from an upload or a server-side path (validated like ``curate ingest``), list, ingest."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import READ, WRITE, ScopeError
from api.schemas import IngestRequest, JobOut, PoolFromPath, PoolList, PoolOptions, PoolOut, errors
from api.uploads import receive_upload
from curate import catalog, jobs
from curate.config import Settings
from curate.errors import CurateError, InputError
from curate.ingest import IngestParams, ingest
from curate.pool import Pool

router = APIRouter(tags=["pools"])

_FORM_FIELDS = {
    "name": {"type": "string", "example": "papers"},
    **{k: {"type": "string"} for k in ("text_field", "id_field", "domain_field", "embedding_field")},
    "drop_duplicates": {"type": "boolean"},
    "on_duplicate_id": {"type": "string", "enum": ["error", "keep-first"]},
    "replace": {"type": "boolean"},
    "chunk_rows": {"type": "integer", "minimum": 1},
    "chunk_bytes": {"type": "integer", "minimum": 1024},
    "encoding": {"type": "string", "example": "latin-1"},
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PoolFromPath.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, **_FORM_FIELDS},
                },
            },
        },
    }
}


class PathNotAllowed(ScopeError):
    code = "path_not_allowed"


def check_server_path(settings: Settings, raw: str, field: str = "path") -> Path:
    """Resolve ``raw`` (symlinks and ``..`` included) and accept it only inside a configured root."""
    roots = settings.allowed_roots
    if not roots:
        raise PathNotAllowed("server-side paths are disabled; set CURATE_POOL_ROOTS or upload the file", field=field)
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        resolved = candidate.resolve(strict=False)
        resolved.exists()  # raises on names the OS cannot even look up (too long, embedded NUL)
    except (OSError, RuntimeError, ValueError):
        raise InputError("unusable path", field=field) from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowed("path is outside the allowed roots (CURATE_POOL_ROOTS)", field=field)
    return resolved


# Arrow's JSON parser holds ~8x its block while parsing: the server reads in blocks of at most 4 MiB (as
# fast as 16 MiB, half the memory per upload), whatever chunk size the caller asks for.
SERVER_BLOCK_BYTES = 4 << 20
SERVER_BLOCK_ROWS = 50_000


def server_params(settings: Settings, values: dict) -> dict:
    """IngestParams values for a file the server reads (upload, server-side path, re-ingest): its read
    limits and block sizes, never the caller's."""
    return {
        **values,
        "chunk_bytes": min(values.get("chunk_bytes", SERVER_BLOCK_BYTES), SERVER_BLOCK_BYTES),
        "chunk_rows": min(values.get("chunk_rows", SERVER_BLOCK_ROWS), SERVER_BLOCK_ROWS),
        "max_expanded_bytes": settings.max_upload_expanded_bytes,
        "max_record_bytes": settings.max_record_bytes,
    }


def _create(settings: Settings, source: Path, name: str, options: PoolOptions, shown: str, kind: str) -> dict:
    params = IngestParams(**server_params(settings, options.model_dump()), embed=False, clusters=0)
    try:
        report = ingest(settings, source, name, params)
    except CurateError as exc:
        if exc.file == str(source):
            exc.file = shown  # name the caller's file, not our temp path
        raise
    pool_id = report["pool"]["id"]
    if kind == "upload":
        dest = settings.uploads_dir / pool_id
        shutil.rmtree(dest, ignore_errors=True)
        source.parent.rename(dest)
        source = dest / source.name
    with catalog.session(settings) as db:
        row = db.get(catalog.PoolRow, pool_id)
        row.info = {
            **(row.info or {}),
            "source": {"kind": kind, "path": str(source), "filename": shown},
            "ingest": options.model_dump(exclude={"replace"}),
        }
    return Pool.load(settings, pool_id).describe()


def _form_options(fields: dict[str, str]) -> tuple[str, PoolOptions]:
    raw: dict = dict(fields)
    name = raw.pop("name", "")
    try:
        model = PoolFromPath(name=name, path="-", **raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return model.name, PoolOptions(**model.model_dump(exclude={"name", "path"}))


@router.post(
    "/pools",
    status_code=201,
    response_model=PoolOut,
    dependencies=[WRITE],
    openapi_extra=_CREATE_BODY,
    responses=errors(401, 403, 409, 413, 415, 422),
    summary="Create a pool from an upload (multipart) or a server-side path (JSON)",
)
async def create_pool(request: Request) -> JSONResponse:
    """Reads, validates and stores the records now (n-grams included); embeddings come from ``/ingest``.

    A bad file gets a 422 naming its line and field, and leaves nothing behind.
    """
    settings: Settings = request.app.state.settings
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        tmp = settings.uploads_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            upload = await receive_upload(request, tmp, settings.max_upload_bytes)
            if upload.path is None:
                raise InputError("no file part in the upload", field="file")
            name, options = _form_options(upload.fields)
            out = await run_in_threadpool(_create, settings, upload.path, name, options, upload.filename, "upload")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return JSONResponse(out, status_code=201)
    if ctype.startswith("application/json"):
        try:
            body = PoolFromPath.model_validate(json.loads(await request.body()))
        except (ValueError, TypeError) as exc:
            errs = exc.errors() if isinstance(exc, ValidationError) else [{"loc": ["body"], "msg": str(exc)}]
            raise RequestValidationError(errs) from None
        path = check_server_path(settings, body.path)
        options = PoolOptions(**body.model_dump(exclude={"name", "path"}))
        out = await run_in_threadpool(_create, settings, path, body.name, options, body.path, "path")
        return JSONResponse(out, status_code=201)
    return JSONResponse(
        {
            "error": {
                "code": "unsupported_media_type",
                "message": "use multipart/form-data or application/json",
                "details": {"content_type": ctype},
            }
        },
        status_code=415,
    )


@router.get("/pools", response_model=PoolList, dependencies=[READ], responses=errors(401, 403))
def list_pools(request: Request, limit: int = 100, offset: int = 0) -> dict:
    settings = request.app.state.settings
    rows = catalog.list_pools(settings)
    page = rows[max(offset, 0) : max(offset, 0) + max(min(limit, 1000), 0)]
    return {"data": [Pool.load(settings, r.id).describe(r) for r in page], "count": len(rows)}


@router.get("/pools/{pool}", response_model=PoolOut, dependencies=[READ], responses=errors(401, 403, 404))
def get_pool(request: Request, pool: str) -> dict:
    """A pool by id or name."""
    return Pool.load(request.app.state.settings, pool).describe()


def _source_of(settings: Settings, row: catalog.PoolRow, pool: Pool) -> tuple[str, dict]:
    info = row.info or {}
    if "source" in info:
        return info["source"]["path"], dict(info.get("ingest") or {})
    fields = pool.info.get("fields", {})  # a pool made by the CLI: reuse its file and field mapping
    mapping = {"text_field": fields.get("text", "text"), "domain_field": fields.get("domain")}
    ident = fields.get("id")
    mapping["id_field"] = None if not ident or ident.startswith("(") else ident
    mapping["encoding"] = pool.info.get("encoding", "utf-8")
    return pool.info.get("source", ""), mapping


@router.post(
    "/pools/{pool}/ingest",
    status_code=202,
    response_model=JobOut,
    dependencies=[WRITE],
    responses=errors(401, 403, 404, 422),
    summary="Compute a pool's features (embeddings, clusters) as a job",
)
def ingest_pool(request: Request, pool: str, body: IngestRequest | None = None) -> JSONResponse:
    settings: Settings = request.app.state.settings
    body = body or IngestRequest()
    the_pool = Pool.load(settings, pool)
    row = catalog.get_pool(settings, the_pool.id)
    source, mapping = _source_of(settings, row, the_pool)
    if not source or not Path(source).is_file():
        raise InputError(f"the source file of pool '{the_pool.name}' is gone; create the pool again", field="pool")
    params = server_params(settings, {**mapping, "embed": body.embed, "clusters": body.clusters, "seed": body.seed})
    if body.model is not None:
        if body.model.startswith(("/", ".", "~")):
            check_server_path(settings, body.model, field="model")
        from curate.stages.embed import resolve_model

        if body.embed:
            try:
                resolve_model(body.model)
            except (OSError, ValueError):
                raise InputError(f"unusable model name '{body.model[:100]}'", field="model") from None
        params["model"] = body.model
    params["embedding"] = {k: v for k in ("backend", "device") if (v := getattr(body, k)) is not None}
    if body.executor is not None:
        params["executor"] = body.executor.model_dump(mode="json")
    IngestParams(**params)  # fail now, not in the worker
    job = jobs.submit(
        settings, "ingest", {"source": source, "name": the_pool.name, "pool_id": the_pool.id, "ingest": params}
    )
    return JSONResponse(jobs.to_dict(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
