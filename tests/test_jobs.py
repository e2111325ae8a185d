"""The job queue on a real SQLite catalog: exclusive claims, cancellation, recovery of dead workers."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import update

from curate import catalog, jobs
from curate.catalog import JobRow, utcnow
from tests.claims import claim_concurrently


def test_concurrent_claims_never_share_a_job(settings):
    ids, claimed = claim_concurrently(settings, 30, "host")
    assert sorted(claimed) == sorted(ids)  # each exactly once
    assert all(j.status == "running" and j.attempts == 1 for j in jobs.list_jobs(settings))


def test_claim_takes_oldest_first_and_cancel_semantics(settings):
    first = jobs.submit(settings, "ingest", {})
    second = jobs.submit(settings, "ingest", {})
    assert jobs.cancel(settings, second.id).status == "cancelled"  # queued: cancelled at once
    got = jobs.claim(settings, "me:1")
    assert got.id == first.id and jobs.claim(settings, "me:1") is None
    flagged = jobs.cancel(settings, first.id)
    assert flagged.status == "running" and flagged.cancel_requested
    assert jobs.report(settings, first.id, "me:1", progress=0.5, stage="read") is True  # the worker learns of it
    jobs.finish(settings, first.id, "someone-else:2", "succeeded")  # not its holder: ignored
    assert jobs.get(settings, first.id).status == "running"
    jobs.finish(settings, first.id, "me:1", "cancelled")
    assert jobs.get(settings, first.id).status == "cancelled"
    assert jobs.report(settings, first.id, "me:1", progress=0.9) is True  # ended: a stray worker stops too


def test_a_worker_whose_job_was_recovered_is_told_to_stop(settings):
    job = jobs.submit(settings, "ingest", {})
    jobs.claim(settings, "old:1")
    assert jobs.report(settings, job.id, "old:1", progress=0.1) is False
    settings = settings.model_copy(update={"job_stale_seconds": 1.0})
    _age(settings, job.id, 60)
    jobs.recover(settings)
    jobs.claim(settings, "new:2")
    assert jobs.report(settings, job.id, "old:1", progress=0.2) is True
    assert jobs.report(settings, job.id, "new:2", progress=0.2) is False
    assert jobs.get(settings, job.id).progress == 0.2


def _age(settings, job_id: str, seconds: float) -> None:
    with catalog.session(settings) as db:
        db.execute(
            update(JobRow).where(JobRow.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_recover_requeues_then_fails_with_a_reason(settings):
    settings = settings.model_copy(update={"job_stale_seconds": 5.0, "job_max_attempts": 2})
    job = jobs.submit(settings, "selection", {})
    jobs.claim(settings, "elsewhere:1")
    assert jobs.recover(settings) == []  # fresh heartbeat from another host: left alone
    _age(settings, job.id, 60)
    assert jobs.recover(settings) == [(job.id, "queued")]
    assert jobs.get(settings, job.id).message.startswith("re-queued")
    jobs.claim(settings, "elsewhere:1")
    _age(settings, job.id, 60)
    assert jobs.recover(settings) == [(job.id, "failed")]
    row = jobs.get(settings, job.id)
    assert row.error["code"] == "worker_lost" and "2 attempts" in row.message and row.finished_at is not None


def test_recover_sees_a_dead_worker_on_this_host_at_once(settings):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job = jobs.submit(settings, "ingest", {})
    name = f"{jobs.worker_name().rpartition(':')[0]}:{dead.pid}"
    jobs.claim(settings, name)
    assert jobs.recover(settings) == [(job.id, "queued")]  # heartbeat is fresh, but the pid is gone
    alive = jobs.submit(settings, "ingest", {})
    jobs.claim(settings, jobs.worker_name())  # re-claims the first; ours is alive
    jobs.claim(settings, jobs.worker_name())
    assert jobs.recover(settings) == []
    assert jobs.get(settings, alive.id).status == "running"


def test_recover_honours_a_pending_cancel(settings):
    job = jobs.submit(settings, "ingest", {})
    jobs.claim(settings, "elsewhere:9")
    jobs.cancel(settings, job.id)
    _age(settings, job.id, 10_000)
    assert jobs.recover(settings) == [(job.id, "cancelled")]


def test_restart_sweeps_what_killed_writers_left_and_nothing_else(settings):
    """`atomic_path` leftovers a day untouched go; a live writer's temp folder and real files stay."""
    import os
    import time

    from curate.io import atomic_path

    day_ago = time.time() - 2 * 24 * 3600
    root = settings.root / "manifests"
    root.mkdir(parents=True)

    def aged(path, when=day_ago):
        os.utime(path, (when, when))
        return path

    dead_dir = root / ".tmp-abc-123"  # a manifest folder whose writer was killed
    (dead_dir / "sub").mkdir(parents=True)
    for path in (_touch(dead_dir / "sub" / "subset.parquet"), dead_dir / "sub", dead_dir):
        aged(path)
    dead_file = aged(_touch(root / ".old-manifest.json-9f"))
    live_dir = root / ".tmp-live-456"
    live_dir.mkdir()
    _touch(live_dir / "chunk-0001.npy")  # being written now
    aged(live_dir)
    real = aged(_touch(root / "kept.json"))
    with atomic_path(root / "fresh.json") as tmp:  # in flight during the sweep: stays
        tmp.write_text("{}")
        removed = jobs.sweep_home(settings)
    assert sorted(removed) == sorted([dead_dir, dead_file])
    assert not dead_dir.exists() and not dead_file.exists()
    assert live_dir.exists() and real.exists() and (root / "fresh.json").exists()
    assert jobs.sweep_home(settings) == []


def _touch(path):
    path.write_text("x")
    return path


def test_find_identical_by_key_however_many_jobs_came_since(settings):
    """The eval route's GET reuses an identical job by its params key; it used to scan the newest
    1000 jobs and queue a duplicate once more had come."""
    spec = {"manifest": "m" * 64, "target": None, "eval": {"order": 3, "random_seeds": 8}}
    first = jobs.submit(settings, "eval", spec)
    filler = [
        JobRow(id=f"{i:032x}", kind="eval", status="succeeded", params={"n": i}, params_key=jobs.params_key({"n": i}))
        for i in range(1500)
    ]
    with catalog.session(settings) as db:
        db.add_all(filler)
    same = {"eval": {"random_seeds": 8, "order": 3}, "target": None, "manifest": "m" * 64}  # key order does not matter
    assert jobs.find_identical(settings, "eval", same, ("queued", "running", "succeeded")).id == first.id
    assert jobs.find_identical(settings, "eval", {**spec, "target": "t"}, ("queued",)) is None
    assert jobs.find_identical(settings, "ingest", spec, ("queued",)) is None  # another kind
    jobs.cancel(settings, first.id)
    assert jobs.find_identical(settings, "eval", spec, ("queued", "running", "succeeded")) is None
