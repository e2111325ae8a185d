"""Online mixing sessions over HTTP: thin handlers over :mod:`curate.mixing`.

Handlers are plain ``def`` so FastAPI runs them in its thread pool: each call holds a database
lock for a few milliseconds and must not block the event loop.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from curate import mixing
from curate.errors import ConflictError

router = APIRouter(prefix="/mixing/sessions", tags=["mixing"])


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field(description="Pool name or id.")
    group_by: Literal["domain", "cluster"] = "domain"
    params: dict = Field(default_factory=dict, description="odm parameters (variant, alpha, warmup_steps, ...).")
    seed: int = 0


class NextBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(ge=1, le=1_000_000)
    request_id: str | None = Field(
        None, max_length=100, description="Client token: a retried request returns the same step, not a new one."
    )
    with_text: bool = Field(True, description="Include each record's text.")


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int
    losses: dict[str, float] = Field(description="Mean training loss per group served at this step.")


def _conflict(exc: ConflictError) -> JSONResponse:
    body = exc.to_dict()
    return JSONResponse({"error": body}, status_code=409)


@router.post("", status_code=201)
def create(request: Request, body: CreateSession) -> dict:
    """Open a session: the bandit starts from the initial mixture of the pool's groups."""
    return mixing.create_session(
        request.app.state.settings, pool=body.pool, group_by=body.group_by, params=body.params, seed=body.seed
    )


@router.post("/{session_id}/next")
def next_batch(request: Request, session_id: str, body: NextBatch):
    """The next step's records, drawn from the current mixture without replacement per group epoch."""
    try:
        out = mixing.next_batch(
            request.app.state.settings,
            session_id,
            body.batch_size,
            request_id=body.request_id,
            with_text=body.with_text,
        )
        return JSONResponse(out)  # plain JSON types already: skip FastAPI's per-field encoder
    except ConflictError as exc:
        return _conflict(exc)


@router.post("/{session_id}/feedback")
def feedback(request: Request, session_id: str, body: Feedback):
    """Report a step's losses; idempotent per step, 409 (with ``expected_step``) when out of order."""
    try:
        return JSONResponse(mixing.feedback(request.app.state.settings, session_id, body.step, body.losses))
    except ConflictError as exc:
        return _conflict(exc)


@router.get("/{session_id}")
def state(
    request: Request,
    session_id: str,
    since: int | None = Query(None, ge=0, description="History after this step (default: the latest rows)."),
    limit: int = Query(1000, ge=1, le=100_000, description="At most this many history rows."),
) -> dict:
    """Weights, estimates, step counters, epoch positions and the weight history."""
    return mixing.get_session(request.app.state.settings, session_id, since=since, limit=limit)


@router.post("/{session_id}/manifest", status_code=201)
def freeze(request: Request, session_id: str):
    """Freeze the records served so far, weighted by the current mixture, as a manifest v1."""
    try:
        return mixing.freeze(request.app.state.settings, session_id)
    except ConflictError as exc:
        return _conflict(exc)
