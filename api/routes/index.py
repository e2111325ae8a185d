"""The front page: pools, recent jobs and manifests, with links to each manifest's report.

Server-rendered HTML (``curate.report.render_index``), read scope like every other resource."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import READ
from api.schemas import errors
from curate import catalog, jobs
from curate.report import render_index

router = APIRouter(tags=["index"])
RECENT_JOBS = 50
RECENT_MANIFESTS = 200


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@router.get(
    "/",
    dependencies=[READ],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **errors(401, 403)},
    summary="HTML index of pools, jobs and manifests",
)
def index(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    pools = catalog.list_pools(settings)
    names = {p.id: p.name for p in pools}
    manifests = catalog.list_manifests(settings)[::-1][:RECENT_MANIFESTS]  # newest first
    return HTMLResponse(
        render_index(
            [{"id": p.id, "name": p.name, "n_records": p.n_records, "created_at": _iso(p.created_at)} for p in pools],
            [jobs.to_dict(j) for j in jobs.list_jobs(settings, limit=RECENT_JOBS)],
            [
                {
                    "id": m.id,
                    "selector": m.selector,
                    "pool_id": m.pool_id,
                    "pool_name": names.get(m.pool_id),
                    "selected": m.selected,
                    "created_at": _iso(m.created_at),
                }
                for m in manifests
            ],
        )
    )
