"""The docker-compose topology run natively: real Postgres + ``curate serve --workers 0`` + ``curate worker``.

Skips (with the reason) when Postgres is not reachable and CURATE_TEST_DATABASE_URL is unset; FAILS when
CURATE_TEST_DATABASE_URL is set and Postgres does not answer, so CI can never skip it silently.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from curate.client import CurateClient
from curate.config import Settings
from tests.apiserver import LiveServer, LiveWorker
from tests.claims import claim_concurrently
from tests.test_api_flow import jsonl_bytes, synthetic_rows

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url():
    required = os.environ.get("CURATE_TEST_DATABASE_URL")
    url = required or DEFAULT_URL
    try:
        admin = create_engine(url)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        if required:
            pytest.fail(f"CURATE_TEST_DATABASE_URL={url} is set but Postgres does not answer: {exc}")
        pytest.skip(
            f"Postgres not reachable at {url} ({type(exc).__name__}); set CURATE_TEST_DATABASE_URL to require it"
        )
    schema = f"curate_test_{uuid.uuid4().hex[:12]}"  # one schema per test: runs never collide
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_skip_locked_claims_are_exclusive(pg_url, tmp_path):
    settings = Settings(home=tmp_path / "home", database_url=pg_url)
    ids, claimed = claim_concurrently(settings, 24, "pg")
    assert sorted(claimed) == sorted(ids)
    with create_engine(pg_url).connect() as conn:  # the rows really live in Postgres
        assert conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'")).scalar() >= 24


def test_compose_topology_natively(pg_url, tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(jsonl_bytes(synthetic_rows(200, seed=5)))
    srv = LiveServer(
        tmp_path / "home",
        workers=0,
        env={"CURATE_DATABASE_URL": pg_url, "CURATE_API_TOKENS": "t0k:read,write"},
        token="t0k",
    ).start()
    worker = LiveWorker(srv.env, tmp_path / "worker.log")
    try:
        with CurateClient(srv.url, token="t0k") as api:
            pool = api.upload_pool("pg", src, domain_field="topic", embedding_field="vec")
            api.wait(api.ingest("pg", clusters=4)["id"], timeout=120, poll=0.2)
            job = api.wait(api.select("pg", "stratified", 50, seed=1)["id"], timeout=120, poll=0.2)
            mid = job["result"]["manifest_id"]
            doc = api.manifest(mid)
            assert doc["pool"]["id"] == pool["id"] and doc["budget"]["selected"] == 50
            parquet = api.download(mid, tmp_path / "s.parquet")
            assert hashlib.sha256(parquet.read_bytes()).hexdigest() == doc["files"][0]["sha256"]
            ids = pl.read_parquet(parquet)["id"].to_list()
            for fmt in ("jsonl", "csv"):
                body = api.http.get(f"/v1/manifests/{mid}/subset", params={"format": fmt}).content
                frame = pl.read_ndjson(io.BytesIO(body)) if fmt == "jsonl" else pl.read_csv(io.BytesIO(body))
                assert frame["id"].to_list() == ids
        with create_engine(pg_url).connect() as conn:
            rows = conn.execute(text("SELECT kind, status, worker FROM jobs ORDER BY created_at")).all()
            assert [(k, s) for k, s, _ in rows] == [("ingest", "succeeded"), ("selection", "succeeded")]
            assert all(w.endswith(f":{worker.proc.pid}") for _, _, w in rows)  # run by the separate worker
            assert conn.execute(text("SELECT count(*) FROM manifests")).scalar() == 1
    finally:
        assert worker.stop() == 0  # SIGTERM: a clean exit between jobs
        srv.stop()
