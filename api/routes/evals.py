"""Downstream eval of a manifest as a job: ``GET /v1/manifests/{id}/eval`` returns the eval job of
that (manifest, target, params), submitting it the first time; poll ``/v1/jobs/{id}`` or repeat the GET.

A GET may start work because the answer is a pure function of immutable inputs (like the report):
repeating it never starts a second job while one for the same request is queued, running or done.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.deps import READ
from api.routes.manifests import ManifestId, find
from api.routes.selections import request_target
from api.schemas import JobOut, errors
from curate import jobs
from curate.eval import EvalParams
from curate.manifest import read_manifest

router = APIRouter(tags=["manifests"])
REUSABLE = ("queued", "running", "succeeded")


class EvalQuery(EvalParams):
    """EvalParams as query parameters, plus the target to score on."""

    target: str | None = Field(
        None,
        max_length=4096,
        description="Texts file (inside the allowed roots) or pool; default the manifest's own target.",
    )


@router.get(
    "/manifests/{manifest_id}/eval",
    response_model=JobOut,
    dependencies=[READ],
    responses={202: {"model": JobOut, "description": "Eval job queued or running"}, **errors(401, 403, 404, 422)},
    summary="Target loss of a proxy LM trained on the manifest vs random subsets of its size, as a job",
)
def manifest_eval(
    request: Request, query: Annotated[EvalQuery, Query()], manifest_id: str = ManifestId
) -> JSONResponse:
    settings = request.app.state.settings
    doc = read_manifest(find(settings, manifest_id))
    spec = {
        "manifest": doc["id"],
        "target": request_target(settings, query.target),
        "eval": EvalParams(**query.model_dump(exclude={"target"})).model_dump(mode="json"),
    }
    row = jobs.find_identical(settings, "eval", spec, REUSABLE) or jobs.submit(settings, "eval", spec)
    job = jobs.to_dict(row)
    status = 200 if job["status"] == "succeeded" else 202
    return JSONResponse(job, status_code=status, headers={"Location": f"/v1/jobs/{job['id']}"})
