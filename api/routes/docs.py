"""``/docs``: Swagger UI served from the ``swagger-ui-bundle-v2`` package, so it works with no network.

FastAPI's own ``/docs`` (and ``/redoc``) load their scripts from a CDN; an air-gapped or offline
server showed a blank page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs/static"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="curate API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect")
def oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def mount(app: FastAPI) -> None:
    """The router plus the package's static files (a mount cannot live on an ``APIRouter``)."""
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=Path(swagger_ui_path)), name="swagger-ui")
