"""Pipelines: a pipeline file's body as JSON, checked now (steps, references, needs, paths), run as a job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import WRITE
from api.routes.pools import check_server_path
from api.schemas import JobOut, errors
from curate import jobs
from curate.steps.plan import plan, with_resolved_targets
from curate.steps.spec import PipelineSpec, check_selectors, resolve_paths

router = APIRouter(tags=["pipelines"])


@router.post(
    "/pipelines",
    status_code=202,
    response_model=JobOut,
    dependencies=[WRITE],
    responses=errors(401, 403, 404, 422),
    summary="Run a pipeline (the same model as a pipeline file) as a job; `executor: {kind: ray, address}` "
    "runs its per-record work on a Ray cluster",
)
def create_pipeline(request: Request, body: PipelineSpec) -> JSONResponse:
    settings = request.app.state.settings
    check_selectors(body)
    spec = resolve_paths(body, lambda raw: check_server_path(settings, raw, field="path"))
    planned, _ = plan(settings, spec, check_target=lambda raw: check_server_path(settings, raw, field="target"))
    spec = with_resolved_targets(spec, planned)
    params = {"spec": spec.model_dump(mode="json", by_alias=True, exclude_unset=True), "name": spec.name}
    job = jobs.submit(settings, "pipeline", params)
    return JSONResponse(jobs.to_dict(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
