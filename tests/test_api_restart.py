"""Jobs survive the server: kill -9 mid-job, restart, and the job ends; cancel stops running work.

One server and one pool for both scenarios, to keep the test short."""

from __future__ import annotations

import json
import time

import pytest

from curate.manifest import verify
from tests.apiserver import LiveServer, wait_job

N_ROWS = 20_000


def _write_corpus(path):
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]
    with open(path, "w") as f:
        for i in range(N_ROWS):
            text = " ".join(words[(i * 7 + j * 3) % 10] for j in range(12)) + f" {i}"
            f.write(json.dumps({"id": f"r{i}", "text": text, "domain": f"d{i % 5}"}) + "\n")


def _start(tmp_path, name: str) -> LiveServer:
    shared = tmp_path / "shared"
    if not shared.exists():
        shared.mkdir()
        _write_corpus(shared / "corpus.jsonl")
    env = {"CURATE_POOL_ROOTS": str(shared), "CURATE_JOB_STALE_SECONDS": "20"}
    return LiveServer(tmp_path / name, workers=1, env=env)


def _running(http, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job["stage"] == "read":
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} never reached its read stage")


def test_kill9_restart_then_cancel(tmp_path):
    srv = _start(tmp_path, "home").start()
    try:
        http = srv.client()
        # Small chunks: the read stage reports progress hundreds of times, so it is long enough to interrupt.
        r = http.post("/v1/pools", json={"name": "c", "path": "corpus.jsonl", "chunk_bytes": 4096})
        assert r.status_code == 201, r.text
        ingest = http.post("/v1/pools/c/ingest", json={"embed": False}).json()
        selection = http.post("/v1/selections", json={"pool": "c", "selector": "stratified", "budget": 50}).json()
        _running(http, ingest["id"])
        srv.kill9()  # the worker dies with it (PR_SET_PDEATHSIG)
        srv.start()
        http = srv.client()
        done = wait_job(http, ingest["id"], timeout=120)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2  # the first run was recovered and re-queued, not left "running"
        sel = wait_job(http, selection["id"], timeout=120)
        assert sel["status"] == "succeeded", sel
        assert http.get("/v1/jobs", params={"status": "running"}).json()["count"] == 0
        listed = http.get("/v1/manifests").json()["data"]
        assert [m["id"] for m in listed] == [sel["result"]["manifest_id"]]
        for m in listed:  # whatever is listed is whole
            assert verify(srv.home / "manifests" / m["id"]) == []

        # Cancel a running job: it stops at its next progress report and removes its temp folders.
        pools_before = sorted(p.name for p in (srv.home / "pools").iterdir())  # incl. the killed run's temp dirs
        job = http.post("/v1/pools/c/ingest", json={"embed": False}).json()
        _running(http, job["id"])
        assert len(list((srv.home / "pools").iterdir())) > len(pools_before)  # it is writing a temp folder
        r = http.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        done = wait_job(http, job["id"], timeout=60)
        assert done["status"] == "cancelled" and done["progress"] < 1.0 and done["finished_at"] is not None
        assert sorted(p.name for p in (srv.home / "pools").iterdir()) == pools_before  # its temp folders are gone
        # The worker is free again: the next job runs to the end.
        sel = http.post("/v1/selections", json={"pool": "c", "selector": "random", "budget": 10}).json()
        assert wait_job(http, sel["id"], timeout=60)["status"] == "succeeded"
    finally:
        srv.stop()
