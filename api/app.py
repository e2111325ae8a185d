"""App factory: routers, the error envelope, and settings injected once."""

from __future__ import annotations

import ipaddress

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.routes import health, mixing, selectors
from curate import __version__
from curate.config import Settings, get_settings
from curate.errors import CurateError, NotFoundError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _envelope(status: int, code: str, message: str, details: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details or {}}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="curate", version=__version__, description="Data selection and curation service.")
    app.state.settings = settings or get_settings()

    @app.exception_handler(CurateError)
    async def curate_error(_: Request, exc: CurateError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFoundError) else 422 if exc.exit_code == 2 else 500
        body = exc.to_dict()
        return _envelope(status, body["code"], body["message"], body["details"])

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _envelope(422, "invalid_request", errors[0]["msg"] if errors else "invalid request", {"errors": errors})

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:  # never a stack trace to the caller
        return _envelope(500, "internal_error", "internal error")

    app.include_router(health.router)
    app.include_router(selectors.router, prefix="/v1")
    app.include_router(mixing.router, prefix="/v1")
    return app
