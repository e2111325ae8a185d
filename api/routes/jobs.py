"""Jobs: poll, list and cancel background work (ingest, selection)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from api.deps import READ, WRITE
from api.schemas import JobList, JobOut, errors
from curate import jobs

router = APIRouter(tags=["jobs"])
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.get("/jobs", response_model=JobList, dependencies=[READ], responses=errors(401, 403))
def list_jobs(
    request: Request,
    status: Status | None = None,
    kind: str | None = Query(None, max_length=32),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict:
    rows = jobs.list_jobs(request.app.state.settings, status=status, kind=kind, limit=limit, offset=offset)
    return {"data": [jobs.to_dict(r) for r in rows], "count": len(rows)}


@router.get("/jobs/{job_id}", response_model=JobOut, dependencies=[READ], responses=errors(401, 403, 404))
def get_job(request: Request, job_id: str) -> dict:
    """Status, progress (0..1), current stage and message; ``result`` once succeeded, ``error`` once failed."""
    return jobs.to_dict(jobs.get(request.app.state.settings, job_id))


@router.delete("/jobs/{job_id}", response_model=JobOut, dependencies=[WRITE], responses=errors(401, 403, 404, 409))
def cancel_job(request: Request, job_id: str) -> dict:
    """A queued job is cancelled at once; a running one stops at its next progress report
    (``cancel_requested`` is true until then). 409 when the job has already ended."""
    return jobs.to_dict(jobs.cancel(request.app.state.settings, job_id))
