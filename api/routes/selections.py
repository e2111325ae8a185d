"""Selections: validate a request now (selector, params, budget, pool, target), run it as a job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import WRITE
from api.routes.pools import check_server_path
from api.schemas import JobOut, SelectionRequest, errors
from curate import catalog, jobs
from curate.errors import InputError
from curate.selectors.base import get_selector, parse_budget, parse_params
from curate.target import locate_target

router = APIRouter(tags=["selections"])


def request_target(settings, spec: str | None) -> str | None:
    """Curate's own precedence (a pool wins), with files admitted only inside the allowed roots."""
    return locate_target(settings, spec, check_path=lambda raw: check_server_path(settings, raw, field="target"))


@router.post(
    "/selections",
    status_code=202,
    response_model=JobOut,
    dependencies=[WRITE],
    responses=errors(401, 403, 404, 422),
    summary="Select a weighted subset of a pool as a job; its result names the manifest",
)
def create_selection(request: Request, body: SelectionRequest) -> JSONResponse:
    settings = request.app.state.settings
    cls = get_selector(body.selector)
    params = parse_params(cls, body.params).model_dump(mode="json")
    budget = parse_budget(body.budget)
    pool = catalog.get_pool(settings, body.pool)
    target = request_target(settings, body.target)
    if target is not None and not cls.uses_target:
        raise InputError(f"selector '{cls.name}' does not use a target", field="target")
    if target is None and cls.requires_target:
        raise InputError(f"selector '{cls.name}' needs a target (a pool or a texts file)", field="target")
    spec = {
        "pool": pool.id,
        "selector": cls.name,
        "budget": budget,
        "params": params,
        "seed": body.seed,
        "target": target,
    }
    if body.executor is not None:
        spec["executor"] = body.executor.model_dump(mode="json")
    job = jobs.submit(settings, "selection", spec)
    return JSONResponse(jobs.to_dict(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
