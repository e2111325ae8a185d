"""A job queue on the catalog: submit, claim, report, cancel, finish, recover.

Rows are the only shared state between the API and the workers, so a job survives either of them
dying. Claiming uses ``SELECT … FOR UPDATE SKIP LOCKED`` (Postgres) followed by a guarded update
(``WHERE status = 'queued'``), which is also what makes it safe on SQLite, whose writers are serialised.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from curate import catalog
from curate.catalog import JobRow, utcnow
from curate.config import Settings
from curate.errors import ConflictError, NotFoundError
from curate.io import sweep_leftovers
from curate.records import canonical_json, sha256_hex

log = logging.getLogger("curate.jobs")

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def worker_name() -> str:
    """``host:pid``: recovery can tell at once that a worker on this host is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_dict(row: JobRow) -> dict:
    """The public shape of a job (REST, CLI, client)."""

    def iso(value: datetime | None) -> str | None:
        value = _as_utc(value)
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "progress": round(float(row.progress or 0.0), 4),
        "stage": row.stage,
        "message": row.message,
        "result": row.result,
        "error": row.error,
        "params": {k: v for k, v in (row.params or {}).items() if k != "source"},  # no server paths
        "cancel_requested": bool(row.cancel_requested),
        "attempts": row.attempts,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


def params_key(params: dict) -> str:
    return sha256_hex(canonical_json(params))


def submit(settings: Settings, kind: str, params: dict) -> JobRow:
    row = JobRow(
        id=uuid.uuid4().hex, kind=kind, status="queued", params=params, params_key=params_key(params),
        progress=0.0, stage="queued",
    )  # fmt: skip
    with catalog.session(settings) as db:
        db.add(row)
    return row


def find_identical(settings: Settings, kind: str, params: dict, statuses: tuple[str, ...]) -> JobRow | None:
    """The newest job of ``kind`` with exactly these params in one of ``statuses``, by index: a GET that
    would start work reuses it however many jobs came since (jobs from before the key existed are
    not found, and are at worst run once more)."""
    query = (
        select(JobRow)
        .where(JobRow.kind == kind, JobRow.params_key == params_key(params), JobRow.status.in_(statuses))
        .order_by(JobRow.created_at.desc(), JobRow.id)
        .limit(1)
    )
    with catalog.session(settings) as db:
        return db.scalars(query).first()


def get(settings: Settings, job_id: str) -> JobRow:
    with catalog.session(settings) as db:
        row = db.get(JobRow, job_id)
    if row is None:
        raise NotFoundError(f"no job '{job_id}'", field="job")
    return row


def list_jobs(
    settings: Settings, *, status: str | None = None, kind: str | None = None, limit: int = 100, offset: int = 0
) -> list[JobRow]:
    query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
    if status:
        query = query.where(JobRow.status == status)
    if kind:
        query = query.where(JobRow.kind == kind)
    with catalog.session(settings) as db:
        return list(db.scalars(query))


def counts(settings: Settings) -> dict[tuple[str, str], int]:
    """(kind, status) → number of jobs, for /metrics."""
    with catalog.session(settings) as db:
        rows = db.execute(select(JobRow.kind, JobRow.status, func.count()).group_by(JobRow.kind, JobRow.status))
        return {(kind, status): n for kind, status, n in rows}


def cancel(settings: Settings, job_id: str) -> JobRow:
    """Queued jobs are cancelled at once; running ones are flagged and stop at their next progress report."""
    with catalog.session(settings) as db:
        row = db.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"no job '{job_id}'", field="job")
        if row.status in TERMINAL:
            raise ConflictError(f"job '{job_id}' already {row.status}; nothing to cancel", field="job")
        done = db.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == "queued")
            .values(status="cancelled", stage="cancelled", message="cancelled before it started", finished_at=utcnow())
        )
        if done.rowcount == 0:
            db.execute(update(JobRow).where(JobRow.id == job_id).values(cancel_requested=True))
    return get(settings, job_id)


def claim(settings: Settings, worker: str) -> JobRow | None:
    """Take the oldest queued job, or None. Two workers never get the same row."""
    for _ in range(5):
        with catalog.session(settings) as db:
            candidate = db.scalar(
                select(JobRow.id)
                .where(JobRow.status == "queued")
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if candidate is None:
                return None
            now = utcnow()
            taken = db.execute(
                update(JobRow)
                .where(JobRow.id == candidate, JobRow.status == "queued")
                .values(
                    status="running",
                    worker=worker,
                    heartbeat_at=now,
                    started_at=now,
                    attempts=JobRow.attempts + 1,
                    stage="starting",
                    message=None,
                )
            )
        if taken.rowcount == 1:
            return get(settings, candidate)
    return None


def report(
    settings: Settings, job_id: str, worker: str, *, progress: float | None = None, stage=None, message=None
) -> bool:
    """Progress plus heartbeat in one write; returns True when the job should stop: a cancel was
    requested, or the job is no longer this worker's (recovery handed it to another)."""
    values: dict = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if stage is not None:
        values["stage"] = stage
    if message is not None:
        values["message"] = message[:2000]
    with catalog.session(settings) as db:
        mine = db.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
            .values(**values)
        )
        flag = db.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id))
    return bool(flag) or mine.rowcount == 0


def requeue(settings: Settings, job_id: str, worker: str, message: str) -> None:
    """Hand a job back (the worker is shutting down); another worker starts it again."""
    with catalog.session(settings) as db:
        db.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
            .values(status="queued", stage="queued", worker=None, progress=0.0, message=message)
        )


def finish(
    settings: Settings,
    job_id: str,
    worker: str,
    status: str,
    *,
    result: dict | None = None,
    error: dict | None = None,
    message: str | None = None,
) -> None:
    """Only the worker that holds the job may finish it (a recovered job may belong to another now)."""
    values: dict = {"status": status, "finished_at": utcnow(), "stage": status, "message": message}
    if status == "succeeded":
        values["progress"] = 1.0
    if result is not None:
        values["result"] = result
    if error is not None:
        values["error"] = error
    with catalog.session(settings) as db:
        db.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
            .values(**values)
        )


def _worker_gone(worker: str | None, heartbeat: datetime | None, cutoff: datetime) -> bool:
    beat = _as_utc(heartbeat)
    if beat is None or beat < cutoff:
        return True
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(settings: Settings) -> list[tuple[str, str]]:
    """Re-queue (or fail, past ``job_max_attempts``) running jobs whose worker died; returns (id, new status).

    Called when the API starts and by every worker between jobs, so no job stays "running" forever.
    """
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.job_stale_seconds)
    changed = []
    with catalog.session(settings) as db:
        rows = db.execute(
            select(JobRow.id, JobRow.worker, JobRow.heartbeat_at, JobRow.attempts, JobRow.cancel_requested).where(
                JobRow.status == "running"
            )
        ).all()
        for job_id, worker, beat, attempts, cancelled in rows:
            if not _worker_gone(worker, beat, cutoff):
                continue
            reason = f"worker {worker} stopped responding"
            if cancelled:
                values = {"status": "cancelled", "stage": "cancelled", "message": f"{reason}; cancel was requested"}
            elif attempts >= settings.job_max_attempts:
                values = {
                    "status": "failed",
                    "stage": "failed",
                    "message": f"{reason}; gave up after {attempts} attempts",
                    "error": {"code": "worker_lost", "message": f"{reason} during each of {attempts} attempts"},
                }
            else:
                values = {
                    "status": "queued",
                    "stage": "queued",
                    "message": f"re-queued: {reason}",
                    "worker": None,
                    "progress": 0.0,
                }
            if values["status"] != "queued":
                values["finished_at"] = utcnow()
            done = db.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running", JobRow.worker == worker)
                .values(**values)
            )
            if done.rowcount:
                changed.append((job_id, values["status"]))
    return changed


def sweep_home(settings: Settings) -> list[Path]:
    """The file side of ``recover``: remove the temp artifacts killed processes left in
    ``CURATE_HOME`` and the embedding cache (a day untouched; see ``io.sweep_leftovers``).
    Called when the API and each worker start."""
    removed: list[Path] = []
    for root in dict.fromkeys([settings.root, settings.cache_dir]):  # the cache may live elsewhere
        if root.exists():
            removed += sweep_leftovers(root)
    if removed:
        first = [str(p) for p in removed[:5]]
        log.warning("removed leftovers of killed processes", extra={"count": len(removed), "paths": first})
    return removed
