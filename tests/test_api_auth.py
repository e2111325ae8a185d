"""Bearer tokens with read/write scopes: a 401/403 matrix over every /v1 route of the OpenAPI schema."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.apiserver import LiveServer
from tests.conftest import run_cli

TOKENS = "rw-secret:read,write;ro-secret:read;wo-secret:write"
SAMPLE = {
    "pool": "nope",
    "job_id": "0" * 32,
    "manifest_id": "abcdef",
    "other_id": "abcdef",
    "session_id": "0" * 32,
    "fmt": "jsonl",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("auth") / "home", workers=0, env={"CURATE_API_TOKENS": TOKENS}).start()
    yield srv
    srv.stop()


def _routes(url: str) -> list[tuple[str, str]]:
    schema = httpx.get(url + "/openapi.json").json()
    out = []
    for path, ops in schema["paths"].items():
        if path.startswith("/v1/"):
            concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
            out += [(method.upper(), concrete) for method in ops]
    return out


def test_every_route_needs_the_right_scope(server):
    routes = _routes(server.url)
    assert len(routes) >= 10
    for method, path in routes:
        needs = "read" if method == "GET" else "write"
        kwargs = {"json": {}} if method == "POST" else {}
        anon = httpx.request(method, server.url + path, **kwargs)
        assert anon.status_code == 401, (method, path, anon.text)
        assert anon.headers["www-authenticate"] == "Bearer" and anon.json()["error"]["code"] == "unauthorized"
        wrong = httpx.request(method, server.url + path, headers={"Authorization": "Bearer guess"}, **kwargs)
        assert wrong.status_code == 401, (method, path)
        lacking = "wo-secret" if needs == "read" else "ro-secret"
        r = httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {lacking}"}, **kwargs)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, path, r.text)
        ok = httpx.request(method, server.url + path, headers={"Authorization": "Bearer rw-secret"}, **kwargs)
        assert ok.status_code not in (401, 403, 500), (method, path, ok.text)


def test_open_operational_routes(server):
    for path in ("/healthz", "/metrics", "/openapi.json"):
        assert httpx.get(server.url + path).status_code == 200
    assert httpx.get(server.url + "/v1/selectors", headers={"Authorization": "Bearer ro-secret"}).status_code == 200


def test_serve_refuses_public_bind_without_tokens(tmp_path):
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", "1", home=tmp_path / "h")
    assert proc.returncode == 2 and "CURATE_API_TOKENS" in proc.stderr


def test_serve_rejects_a_malformed_token_list(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_API_TOKENS", "secret:admin")
    proc = run_cli("serve", "--port", "1", home=tmp_path / "h")
    assert proc.returncode == 2 and "scope" in proc.stderr
