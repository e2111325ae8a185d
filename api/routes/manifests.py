"""Manifests: list, read, stream the subset as Parquet, JSONL or CSV with a strong ETag, and show
the HTML selection report and the comparison of two manifests (rendered by ``curate.report``).

Only manifests in the catalog are served; a manifest is registered after its folder was renamed
into place, so a half-written one is never listed. Streaming keeps memory flat: Parquet is sent
in 1 MiB blocks, JSONL/CSV are rendered one 16k-row batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow.parquet as pq
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy import select

from api.deps import READ
from api.schemas import MANIFEST_ID, ManifestList, errors
from curate import catalog
from curate.config import Settings
from curate.errors import InputError, NotFoundError
from curate.manifest import SUBSET_SCHEMA, read_manifest, text_export
from curate.manifest import list_manifests as catalogued
from curate.report import cached_report, render_diff
from curate.report import diff as diff_manifests

router = APIRouter(tags=["manifests"])
ManifestId = PathParam(
    pattern=r"^[0-9a-f]{4,64}$", description="Full id or a unique prefix (≥ 4).", examples=[MANIFEST_ID]
)
MEDIA = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson", "csv": "text/csv"}
BATCH_ROWS = 16_384


def find(settings: Settings, manifest_id: str) -> Path:
    with catalog.session(settings) as db:
        rows = db.scalars(
            select(catalog.ManifestRow).where(catalog.ManifestRow.id.startswith(manifest_id, autoescape=True)).limit(2)
        ).all()
    if len(rows) > 1:
        raise InputError(f"manifest id prefix '{manifest_id}' is ambiguous", field="manifest")
    if not rows or not (Path(rows[0].path) / "manifest.json").is_file():
        raise NotFoundError(f"no manifest '{manifest_id}'", field="manifest")
    return Path(rows[0].path)


@router.get("/manifests", response_model=ManifestList, dependencies=[READ], responses=errors(401, 403))
def list_manifests(
    request: Request,
    pool: str | None = Query(None, max_length=200, description="Pool name or id."),
    selector: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict:
    rows = catalogued(request.app.state.settings, pool=pool, selector=selector)
    keys = ("id", "pool_id", "selector", "selected", "seed", "created_at")
    return {"data": [{k: r[k] for k in keys} for r in rows[offset : offset + limit]], "count": len(rows)}


@router.get("/manifests/{manifest_id}", dependencies=[READ], responses=errors(401, 403, 404, 422))
def get_manifest(request: Request, manifest_id: str = ManifestId) -> dict:
    """The manifest v1 document (``manifest.json``)."""
    doc = read_manifest(find(request.app.state.settings, manifest_id))
    doc.pop("path", None)  # a server path is none of the caller's business
    return doc


def download_name(manifest_id: str, fmt: str, with_text: bool) -> str:
    """What ``curl -OJ`` (or a browser) saves the subset as: ``<id12>.subset[-text].<format>``."""
    return f"{manifest_id[:12]}.subset{'-text' if with_text else ''}.{fmt}"


def _file_blocks(path: Path, block: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(block):
            yield chunk


def _rendered(path: Path, fmt: str) -> Iterator[bytes]:
    """The subset as JSONL or CSV, one bounded batch at a time (deterministic bytes for the ETag)."""
    header = fmt == "csv"
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        frame = pl.from_arrow(batch)
        yield (frame.write_ndjson() if fmt == "jsonl" else frame.write_csv(include_header=header)).encode()
        header = False
    if header:  # an empty subset still has a CSV header
        yield pl.from_arrow(SUBSET_SCHEMA.empty_table()).write_csv().encode()


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/manifests/{manifest_id}/subset",
    dependencies=[READ],
    responses={
        200: {"description": "The subset", "content": {m: {} for m in MEDIA.values()}},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **errors(401, 403, 404, 422),
    },
    response_class=StreamingResponse,
)
def download_subset(
    request: Request,
    manifest_id: str = ManifestId,
    format: Literal["parquet", "jsonl", "csv"] = "parquet",  # noqa: A002 — the contract's name
    with_text: bool = False,
) -> Response:
    """``ETag`` of the Parquet subset is its sha256 as recorded in the manifest; other renderings get
    the same hash suffixed with the format, so a cached copy is revalidated with ``If-None-Match``."""
    settings: Settings = request.app.state.settings
    folder = find(settings, manifest_id)
    doc = read_manifest(folder)
    entry = next(f for f in doc["files"] if f["path"] == "subset.parquet")
    suffix = "" if (format == "parquet" and not with_text) else f"-{format}" + ("-text" if with_text else "")
    etag = f'"{entry["sha256"]}{suffix}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-Manifest-Id": doc["id"],
        "Content-Disposition": f'attachment; filename="{download_name(doc["id"], format, with_text)}"',
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    subset = folder / "subset.parquet"
    if with_text:
        cached = text_export(settings, folder, format)
        headers["Content-Length"] = str(cached.stat().st_size)
        return StreamingResponse(_file_blocks(cached), media_type=MEDIA[format], headers=headers)
    if format == "parquet":
        headers["Content-Length"] = str(entry["bytes"])
        return StreamingResponse(_file_blocks(subset), media_type=MEDIA[format], headers=headers)
    return StreamingResponse(_rendered(subset, format), media_type=MEDIA[format], headers=headers)


@router.get(
    "/manifests/{manifest_id}/subset.{fmt}",
    dependencies=[READ],
    responses={200: {"content": {m: {} for m in MEDIA.values()}}, **errors(401, 403, 404, 422)},
    response_class=StreamingResponse,
    summary="The subset under a file name (so `curl -O` saves subset.parquet, subset.jsonl or subset.csv)",
)
def download_subset_file(
    request: Request,
    manifest_id: str = ManifestId,
    fmt: Literal["parquet", "jsonl", "csv"] = PathParam(description="The format, as a file extension."),
    with_text: bool = False,
) -> Response:
    return download_subset(request, manifest_id, fmt, with_text)


@router.get(
    "/manifests/{manifest_id}/report",
    dependencies=[READ],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **errors(401, 403, 404, 422)},
    summary="A self-contained HTML report of the selection (plots inline; no network needed to view)",
)
def manifest_report(
    request: Request,
    manifest_id: str = ManifestId,
    diff: str | None = Query(None, pattern=r"^[0-9a-f]{4,64}$", description="Add a comparison with this manifest."),
) -> Response:
    settings: Settings = request.app.state.settings
    folder = find(settings, manifest_id)
    other = find(settings, diff) if diff else None
    path = cached_report(settings, folder, against=other)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Cache-Control": "private, max-age=300"})


@router.get(
    "/manifests/{manifest_id}/diff/{other_id}",
    dependencies=[READ],
    responses={200: {"content": {"application/json": {}, "text/html": {}}}, **errors(401, 403, 404, 422)},
    summary="Compare two manifests: Jaccard, records only in each, weight drift, domain shift",
)
def manifest_diff(
    request: Request,
    manifest_id: str = ManifestId,
    other_id: str = PathParam(pattern=r"^[0-9a-f]{4,64}$", description="The manifest to compare with."),
    format: Literal["json", "html"] = "json",  # noqa: A002 — same name as the subset route's
) -> Response:
    settings: Settings = request.app.state.settings
    result = diff_manifests(find(settings, manifest_id), find(settings, other_id))
    if format == "html":
        return HTMLResponse(render_diff(result))
    return JSONResponse(result)
