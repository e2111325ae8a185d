"""Shared fixtures: real model, real faiss, real SQLite; the sample pool is ingested once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from curate.config import Settings  # noqa: E402
from curate.ingest import IngestParams, ingest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO / "data" / "papers.jsonl"


@pytest.fixture(scope="session", autouse=True)
def shared_embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the whole session (also inherited by CLI subprocesses), so each
    text is encoded once however many homes the tests create; cache tests use texts of their own."""
    path = tmp_path_factory.mktemp("embedding-cache")
    os.environ["CURATE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An empty CURATE_HOME of the test's own."""
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def papers_settings(tmp_path_factory: pytest.TempPathFactory, shared_embedding_cache: Path) -> Settings:
    """A home holding pool 'papers' (427 abstracts, domain = topic, embeddings, 8 clusters).

    Shared by the session: tests may add manifests (content-addressed) but must not alter the pool.
    """
    s = Settings(home=tmp_path_factory.mktemp("papers") / "home")
    ingest(s, PAPERS, "papers", IngestParams(id_field="id", domain_field="topic", clusters=8))
    return s


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(*args: str, home: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, as a user or a CI job would call it."""
    cmd = [sys.executable, "-m", "curate.cli", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway schema on the real Postgres. Skips without one, unless CI demands it
    (CURATE_TEST_DATABASE_URL set): then an unreachable server fails the test."""
    import uuid

    from sqlalchemy import create_engine, text

    required = os.environ.get("CURATE_TEST_DATABASE_URL")
    base = required or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"curate_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(base, connect_args={"connect_timeout": 5})
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        if required:
            pytest.fail(f"CURATE_TEST_DATABASE_URL is set but Postgres did not answer: {exc}")
        pytest.skip(f"no Postgres reachable at {base}: {type(exc).__name__}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
