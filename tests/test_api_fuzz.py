"""Schemathesis fuzzes every operation of the OpenAPI schema: bad input must never produce a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.apiserver import LiveServer
from tests.test_api_flow import jsonl_bytes, synthetic_rows

pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")


def test_no_server_errors_under_fuzzing(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "corpus.jsonl").write_bytes(jsonl_bytes(synthetic_rows(50)))
    env = {"CURATE_API_TOKENS": "fuzz:read,write", "CURATE_POOL_ROOTS": str(shared)}
    srv = LiveServer(tmp_path / "home", workers=0, env=env, token="fuzz").start()
    try:
        assert srv.client().post("/v1/pools", json={"name": "corpus", "path": "corpus.jsonl"}).status_code == 201
        st = Path(sys.executable).with_name("st")
        cmd = [str(st), "run", f"{srv.url}/openapi.json", "--checks", "not_a_server_error",
               "-H", "Authorization: Bearer fuzz", "--max-examples", "5", "--seed", "7",
               "--phases", "examples,coverage,fuzzing"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "passed" in proc.stdout
        assert '"status": 500' not in srv.log.read_text()
    finally:
        srv.stop()
