"""Shared fixtures: real model, real faiss, real SQLite; the sample pool is ingested once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from curate.config import Settings  # noqa: E402
from curate.ingest import IngestParams, ingest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO / "data" / "papers.jsonl"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An empty CURATE_HOME of the test's own."""
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def papers_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
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
