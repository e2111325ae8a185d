"""App factory: routers, the error envelope, observability, and settings injected once.

A router is one module in ``api/routes`` with ``router = APIRouter(...)``; adding one is one
``include_router`` line below. Routes protect themselves with ``dependencies=[READ]`` / ``[WRITE]``
from ``api.deps``.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import AuthError, ScopeError, parse_tokens
from api.observability import Metrics, ObservabilityMiddleware
from api.routes import docs, evals, health, index, jobs, manifests, mixing, pipelines, pools, selections, selectors
from curate import __version__
from curate import jobs as job_queue
from curate.config import Settings, get_settings
from curate.errors import ConflictError, CurateError, NotFoundError
from curate.streams import LimitExceeded

log = logging.getLogger("curate.api")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _envelope(status: int, code: str, message: str, details: dict | None = None, headers=None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: CurateError) -> int:
    for cls, status in (
        (AuthError, 401),
        (ScopeError, 403),
        (LimitExceeded, 413),  # compressed upload, decompressed size, or one record
        (NotFoundError, 404),
        (ConflictError, 409),
    ):
        if isinstance(exc, cls):
            return status
    return 422 if exc.exit_code == 2 else 500


@asynccontextmanager
async def _lifespan(app: FastAPI):
    for job_id, status in job_queue.recover(app.state.settings):  # jobs whose worker died with the last server
        log.warning("recovered job at startup", extra={"job_id": job_id, "status": status})
    job_queue.sweep_home(app.state.settings)
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    parse_tokens(settings.api_tokens)  # a malformed token list fails here, not on the first request
    app = FastAPI(
        title="curate",
        version=__version__,
        description='Data selection and curation service. Errors are `{"error": {code, message, details}}`; '
        "`Authorization: Bearer <token>` with `read` / `write` scopes when CURATE_API_TOKENS is set.",
        lifespan=_lifespan,
        docs_url=None,  # served by api.routes.docs from local files; /redoc exists only on a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()

    @app.exception_handler(CurateError)
    async def curate_error(_: Request, exc: CurateError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.error("internal error", exc_info=exc)
            return _envelope(500, "internal_error", "internal error")
        body = exc.to_dict()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _envelope(status, body["code"], body["message"], body["details"], headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        return _envelope(422, "invalid_request", errors[0]["msg"] if errors else "invalid request", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _envelope(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:  # never a stack trace to the caller
        log.error("internal error", exc_info=exc)
        return _envelope(500, "internal_error", "internal error")

    docs.mount(app)
    app.include_router(health.router)
    app.include_router(index.router)
    app.include_router(selectors.router, prefix="/v1")
    app.include_router(pools.router, prefix="/v1")
    app.include_router(selections.router, prefix="/v1")
    app.include_router(jobs.router, prefix="/v1")
    app.include_router(manifests.router, prefix="/v1")
    app.include_router(evals.router, prefix="/v1")
    app.include_router(mixing.router, prefix="/v1")
    app.include_router(pipelines.router, prefix="/v1")
    app.add_middleware(ObservabilityMiddleware, settings=settings, metrics=app.state.metrics)
    return app
