"""Operations: liveness with a catalog round trip, and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from curate import catalog, jobs
from curate.catalog import engine_for

router = APIRouter(tags=["operations"])
log = logging.getLogger("curate.api")


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Liveness plus a round trip to the catalog database (503 when it does not answer)."""
    try:
        with engine_for(request.app.state.settings).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "error", "catalog": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "catalog": "ok"})


def _catalog_lines(settings) -> list[str]:
    """Gauges read from the catalog, so they are right whichever process ran the work."""
    lines = ["# HELP curate_jobs Jobs in the catalog by kind and status.", "# TYPE curate_jobs gauge"]
    by = jobs.counts(settings)
    kinds = sorted({k for k, _ in by} | {"ingest", "selection"})
    for kind in kinds:
        for status in jobs.STATUSES:
            lines.append(f'curate_jobs{{kind="{kind}",status="{status}"}} {by.get((kind, status), 0)}')
    with catalog.session(settings) as db:
        n_manifests, selected = db.execute(
            select(func.count(), func.coalesce(func.sum(catalog.ManifestRow.selected), 0))
        ).one()
        n_pools = db.scalar(select(func.count()).select_from(catalog.PoolRow))
    lines += [
        "# HELP curate_records_selected_total Records selected over every manifest in the catalog.",
        "# TYPE curate_records_selected_total counter",
        f"curate_records_selected_total {int(selected)}",
        "# HELP curate_manifests Manifests in the catalog.",
        "# TYPE curate_manifests gauge",
        f"curate_manifests {int(n_manifests)}",
        "# HELP curate_pools Pools in the catalog.",
        "# TYPE curate_pools gauge",
        f"curate_pools {int(n_pools)}",
    ]
    return lines


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format: requests, latency histograms, jobs by status, records selected."""
    lines = request.app.state.metrics.render()
    try:
        lines += _catalog_lines(request.app.state.settings)
    except Exception:  # noqa: BLE001 — request metrics are still worth serving when the catalog is down
        log.warning("catalog metrics unavailable", exc_info=True)
        lines += ["curate_catalog_up 0"]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
