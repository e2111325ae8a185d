"""The REST service end to end against a real ``curate serve`` (uvicorn + worker process) on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import polars as pl
import pytest

from curate.client import APIError, CurateClient
from tests.apiserver import LiveServer, wait_job


def synthetic_rows(n: int, seed: int = 0, dim: int = 8) -> list[dict]:
    """Records with a topic and a vector near that topic's centre (bring-your-own embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, dim))
    words = ["data", "model", "graph", "loss", "token", "layer", "noise", "prior", "batch", "kernel"]
    rows = []
    for i in range(n):
        topic = i % 5
        text = " ".join(rng.choice(words, 12)) + f" record {i}"
        vec = centres[topic] + 0.1 * rng.normal(size=dim)
        rows.append({"id": f"r{i}", "text": text, "topic": f"t{topic}", "vec": [round(float(x), 5) for x in vec]})
    return rows


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    (root / "shared").mkdir()
    (root / "outside").mkdir()
    env = {"CURATE_POOL_ROOTS": str(root / "shared"), "CURATE_MAX_UPLOAD_BYTES": str(200_000)}
    srv = LiveServer(root / "home", workers=1, env=env).start()
    srv.root = root
    yield srv
    srv.stop()


def test_upload_ingest_select_download(server, tmp_path):
    rows = synthetic_rows(300)
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(jsonl_bytes(rows))
    with CurateClient(server.url) as api:
        pool = api.upload_pool("corpus", src, domain_field="topic", embedding_field="vec")
        assert pool["n_records"] == 300 and pool["fields"]["domain"] == "topic"
        assert set(pool["features"]) == {"ngrams", "embed"}  # vectors came with the file
        assert "path" not in pool["source"]

        job = api.ingest("corpus", embed=True, clusters=5)
        assert job["status"] == "queued" and job["kind"] == "ingest"
        done = api.wait(job["id"], timeout=120, poll=0.1)
        assert done["progress"] == 1.0 and done["result"]["pool"]["id"] == pool["id"]
        assert "cluster" in api.pool(pool["id"])["features"]

        sel = api.select("corpus", "stratified", 100, seed=3)
        result = api.wait(sel["id"], timeout=120, poll=0.1)["result"]
        mid = result["manifest_id"]
        assert result["selected"] == 100

        listed = [m["id"] for m in api.manifests(pool="corpus")]
        assert listed == [mid]
        assert api.manifests(pool="corpus", selector="random") == []
        doc = api.manifest(mid)
        assert doc["id"] == mid and doc["budget"]["selected"] == 100 and "path" not in doc
        sha = doc["files"][0]["sha256"]

        # Parquet: the bytes are the manifest's subset, checked by the client and again here.
        out = api.download(mid, tmp_path / "s.parquet")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
        table = pl.read_parquet(out)
        assert table.height == 100 and abs(table["weight"].mean() - 1.0) < 1e-9
        assert table["rank"].to_list() == list(range(100))
        # Stratified by topic: 100 of 5 equal topics is 20 each, and clusters were joined in.
        assert sorted(table["domain"].value_counts()["count"].to_list()) == [20] * 5
        assert table["cluster"].null_count() == 0

        http = server.client()
        for fmt in ("jsonl", "csv"):
            r = http.get(f"/v1/manifests/{mid}/subset", params={"format": fmt})
            assert r.status_code == 200
            other = pl.read_ndjson(io.BytesIO(r.content)) if fmt == "jsonl" else pl.read_csv(io.BytesIO(r.content))
            assert other["id"].to_list() == table["id"].to_list()
            assert np.allclose(other["weight"].to_numpy(), table["weight"].to_numpy())
            assert r.headers["etag"] == f'"{sha}-{fmt}"'

        r = http.get(f"/v1/manifests/{mid[:10]}/subset", params={"format": "jsonl", "with_text": "true"})
        texts = {row["id"]: row["text"] for row in rows}
        got = pl.read_ndjson(io.BytesIO(r.content))
        assert got["id"].to_list() == table["id"].to_list()
        assert all(texts[i] == t for i, t in zip(got["id"], got["text"], strict=True))


def test_etag_and_if_none_match(server, tmp_path):
    http = server.client()
    mid = http.get("/v1/manifests").json()["data"][0]["id"]
    first = http.get(f"/v1/manifests/{mid}/subset")
    etag = first.headers["etag"]
    assert etag == f'"{hashlib.sha256(first.content).hexdigest()}"'
    again = http.get(f"/v1/manifests/{mid}/subset", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    changed = http.get(f"/v1/manifests/{mid}/subset", headers={"If-None-Match": '"0000"'})
    assert changed.status_code == 200 and changed.content == first.content
    csv = http.get(f"/v1/manifests/{mid}/subset", params={"format": "csv"}, headers={"If-None-Match": etag})
    assert csv.status_code == 200  # another rendering, another tag


def test_malformed_upload_names_the_line_and_leaves_nothing(server):
    home = server.home
    before = sorted(p.name for p in (home / "pools").iterdir())
    rows = [json.dumps({"id": "a", "text": "fine"}), json.dumps({"id": "b", "text": "ok"}), '{"id": "c", "text": ']
    http = server.client()
    r = http.post("/v1/pools", data={"name": "broken"}, files={"file": ("bad.jsonl", "\n".join(rows) + "\n")})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"]["line"] == 3 and err["details"]["file"] == "bad.jsonl"
    assert "Traceback" not in r.text and str(home) not in r.text
    # A record without text: the field is named too.
    r = http.post(
        "/v1/pools", data={"name": "broken"}, files={"file": ("t.jsonl", '{"id": "x"}\n{"id": "y", "text": 5}\n')}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["line"] in (1, 2)
    assert sorted(p.name for p in (home / "pools").iterdir()) == before
    assert list((home / "uploads").glob(".tmp-*")) == []
    assert "broken" not in [p["name"] for p in http.get("/v1/pools").json()["data"]]


def test_upload_over_the_limit_is_413(server):
    big = jsonl_bytes(synthetic_rows(2000))  # > 200 kB limit of this server
    assert len(big) > 200_000
    r = server.client().post("/v1/pools", data={"name": "big"}, files={"file": ("big.jsonl", big)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert list((server.home / "uploads").glob(".tmp-*")) == []
    r = server.client().post(
        "/v1/selections", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_server_side_paths_stay_inside_roots(server):
    shared, outside = server.root / "shared", server.root / "outside"
    (shared / "ok.jsonl").write_bytes(jsonl_bytes(synthetic_rows(20, seed=1)))
    (outside / "secret.jsonl").write_bytes(jsonl_bytes(synthetic_rows(20, seed=2)))
    link = shared / "link.jsonl"
    if not link.exists():
        os.symlink(outside / "secret.jsonl", link)
    http = server.client()
    for path in ("../outside/secret.jsonl", str(outside / "secret.jsonl"), "link.jsonl", "/etc/passwd"):
        r = http.post("/v1/pools", json={"name": "escape", "path": path})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "path_not_allowed"
    r = http.post("/v1/pools", json={"name": "inside", "path": "ok.jsonl"})
    assert r.status_code == 201 and r.json()["n_records"] == 20
    r = http.post(
        "/v1/selections", json={"pool": "inside", "selector": "random", "budget": 5, "target": "/etc/passwd"}
    )
    assert r.status_code == 403


def test_bad_requests_are_4xx_with_the_envelope(server):
    http = server.client()
    cases = [
        (http.post("/v1/selections", json={"pool": "nope", "selector": "random", "budget": 5}), 404, "not_found"),
        (http.post("/v1/selections", json={"pool": "corpus", "selector": "nope", "budget": 5}), 422, "invalid_input"),
        (http.post("/v1/selections", json={"pool": "corpus", "selector": "random", "budget": "lots"}), 422, None),
        (
            http.post(
                "/v1/selections", json={"pool": "corpus", "selector": "random", "budget": 5, "params": {"x": 1}}
            ),
            422,
            "invalid_input",
        ),
        (http.post("/v1/selections", content=b"{not json", headers={"content-type": "application/json"}), 422, None),
        (http.get("/v1/jobs/doesnotexist"), 404, "not_found"),
        (http.get("/v1/manifests/zzzzzz"), 422, "invalid_request"),
        (http.get("/v1/manifests/abcdef0123"), 404, "not_found"),
        (http.post("/v1/pools", content=b"x", headers={"content-type": "text/plain"}), 415, None),
        (http.get("/v1/nothing"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        err = response.json()["error"]
        assert set(err) == {"code", "message", "details"} and err["message"]
        if code:
            assert err["code"] == code


def test_metrics_logs_and_request_ids(server):
    http = server.client()
    r = http.get("/v1/pools", headers={"X-Request-ID": "trace-me-42"})
    assert r.headers["x-request-id"] == "trace-me-42"
    assert len(http.get("/healthz").headers["x-request-id"]) == 32
    text = http.get("/metrics").text
    assert 'curate_http_requests_total{method="GET",route="/v1/pools",status="200"}' in text
    assert 'curate_http_request_duration_seconds_bucket{method="GET",route="/v1/pools",le="+Inf"}' in text
    assert 'curate_jobs{kind="selection",status="succeeded"} 1' in text
    assert "curate_records_selected_total 100" in text
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "trace-me-42"]
    assert mine and mine[0]["route"] == "/v1/pools" and mine[0]["status"] == 200


def test_cancel_queued_and_finished_jobs(server):
    http = server.client()
    job = http.post("/v1/selections", json={"pool": "corpus", "selector": "random", "budget": 7, "seed": 11}).json()
    done = wait_job(http, job["id"])
    assert done["status"] == "succeeded"
    r = http.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 409
    assert http.delete("/v1/jobs/unknown").status_code == 404
    with CurateClient(server.url) as api, pytest.raises(APIError) as err:
        api.select("corpus", "random", 5, params={"bogus": 1})
    assert err.value.status == 422 and "bogus" in err.value.message
