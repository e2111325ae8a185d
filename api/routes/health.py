from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from curate.catalog import engine_for

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Liveness plus a round trip to the catalog database."""
    try:
        with engine_for(request.app.state.settings).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "error", "catalog": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "catalog": "ok"})
