"""POST /v1/pipelines on a real `curate serve`: a pipeline body runs as a job, on the local executor
and on a real local Ray cluster named by `executor: {kind: ray, address}`; bad bodies are 4xx."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curate.config import Settings
from curate.steps.run import run_spec
from curate.steps.spec import parse_spec
from tests.apiserver import LiveServer, wait_job

DATA = Path(__file__).resolve().parents[1] / "data" / "pipeline"


def body(executor=None, base: str = "") -> dict:
    """Paths relative to the server's first allowed root (or under ``base``)."""
    spec = {
        "name": "api-chain",
        "steps": [
            {"step": "ingest", "name": "raw", "sources": [
                {"path": f"{base}debian-libs.jsonl", "source": "libs", "id_field": "package",
                 "text_field": "description"},
                {"path": f"{base}debian-apps.csv", "source": "apps", "id_field": "name", "text_field": "about"},
            ]},
            {"step": "filter", "name": "clean", "length": {"min_words": 5}, "characters": {}},
            {"step": "dedup", "name": "fuzzy", "method": "minhash"},
            {"step": "select", "name": "pick", "selector": "dsir", "budget": 50,
             "target": f"{base}target-science.jsonl"},
        ],
    }  # fmt: skip
    if executor is not None:
        spec["executor"] = executor
    return spec


def live_server(root: Path) -> LiveServer:
    shutil.copytree(DATA, root / "shared")
    srv = LiveServer(root / "home", workers=1, env={"CURATE_POOL_ROOTS": str(root / "shared")}).start()
    srv.root = root
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = live_server(tmp_path_factory.mktemp("api-pipelines"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    """The same pipeline run in-process on the local executor, in a home of its own."""
    root = tmp_path_factory.mktemp("local-run")
    spec = parse_spec(body(base=f"{DATA}/"))
    return run_spec(Settings(home=root / "home"), spec, name="api-chain")


def test_pipeline_job_runs_and_matches_a_local_run(server, local_result):
    with server.client() as c:
        resp = c.post("/v1/pipelines", json=body())
        assert resp.status_code == 202, resp.text
        job = wait_job(c, resp.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job["error"]
    steps = job["result"]["steps"]
    assert [s["step"] for s in steps] == ["raw", "clean", "fuzzy", "pick"]
    assert all("path" not in s for s in steps)  # no server paths in job results
    assert [s.get("manifest") for s in steps] == [s.get("manifest") for s in local_result["steps"]]
    assert job["result"]["executor"]["kind"] == "local"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda b: b["steps"][2].update({"from": "ghost"}), 422, "steps.2.from"),
        (lambda b: b["steps"][0]["sources"][0].update({"path": "/etc/passwd"}), 403, "path"),
        (lambda b: b["steps"][3].update({"target": "missing.jsonl"}), 422, "steps.3.target"),
        (lambda b: b["steps"][3].update({"params": {"nope": 1}}), 422, "steps.3.nope"),
    ],
)
def test_bad_bodies_are_rejected_before_a_job_exists(server, change, status, field):
    spec = body()
    change(spec)
    with server.client() as c:
        before = c.get("/v1/jobs").json()["count"]
        resp = c.post("/v1/pipelines", json=spec)
        assert resp.status_code == status, resp.text
        assert field in resp.json()["error"]["details"].get("field", "") + resp.json()["error"]["message"]
        assert c.get("/v1/jobs").json()["count"] == before


def test_bad_step_kind_is_a_validation_error(server):
    spec = body()
    spec["steps"][1]["step"] = "transmogrify"
    with server.client() as c:
        resp = c.post("/v1/pipelines", json=spec)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"


@pytest.fixture(scope="module")
def ray_address():
    """A real local Ray cluster, started by this process (and so stopped by its shutdown)."""
    ray = pytest.importorskip("ray")
    ctx = ray.init(
        num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False, _node_ip_address="127.0.0.1"
    )  # loopback only: the test machine has no other network
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory, ray_address):
    """A server with a home of its own (nothing the local run computed is cached there), started after
    the cluster so its environment carries the cluster's auth settings (RAY_AUTH_MODE=token)."""
    srv = live_server(tmp_path_factory.mktemp("api-ray"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ray_job(ray_server, ray_address):
    with ray_server.client() as c:
        resp = c.post("/v1/pipelines", json=body({"kind": "ray", "address": ray_address}))
        assert resp.status_code == 202, resp.text
        return wait_job(c, resp.json()["id"], timeout=600)


def _drivers() -> list:
    """Ray jobs whose driver is not this test process: the server's worker connecting to the cluster."""
    import os

    import ray

    return [j for j in ray._private.state.jobs() if int(j["DriverPid"]) != os.getpid()]


def test_pipeline_job_on_a_ray_cluster(ray_job, local_result, ray_address):
    job = ray_job
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["executor"] == {"kind": "ray", "address": ray_address, "num_cpus": None, "concurrency": None}
    assert _drivers(), "the server's worker never connected to the cluster"
    # the per-record work ran on the cluster, and gave the local executor's manifests bit for bit
    assert [s.get("manifest") for s in job["result"]["steps"]] == [s.get("manifest") for s in local_result["steps"]]


def test_selection_job_on_a_ray_cluster_matches_a_local_one(ray_job, ray_server, server, ray_address, local_result):
    """POST /v1/selections takes the same `executor` as a pipeline: dsir's per-record scoring runs on
    the cluster, and the manifest is the one the local executor writes for the same pool."""
    assert ray_job["status"] == "succeeded", ray_job["error"]
    pool = ray_job["result"]["steps"][1]["pool"]  # the filtered pool, present on both servers
    request = {"pool": pool, "selector": "dsir", "budget": 40, "target": "target-science.jsonl", "seed": 3}
    with ray_server.client() as c:
        resp = c.post("/v1/selections", json={**request, "executor": {"kind": "ray", "address": ray_address}})
        assert resp.status_code == 202, resp.text
        on_ray = wait_job(c, resp.json()["id"], timeout=600)
        bad = c.post("/v1/selections", json={**request, "executor": {"kind": "spark"}})
        assert bad.status_code == 422, bad.text
    assert on_ray["status"] == "succeeded", on_ray["error"]
    assert on_ray["result"]["executor"]["kind"] == "ray"
    with server.client() as c:
        resp = c.post("/v1/pipelines", json=body())  # the local server's pools (cached if already run)
        assert wait_job(c, resp.json()["id"], timeout=300)["status"] == "succeeded"
        resp = c.post("/v1/selections", json=request)
        assert resp.status_code == 202, resp.text
        local = wait_job(c, resp.json()["id"], timeout=300)
    assert local["status"] == "succeeded", local["error"]
    assert local["result"]["executor"] == {"kind": "local"}
    assert on_ray["result"]["manifest_id"] == local["result"]["manifest_id"]
    assert on_ray["result"]["selected"] == 40
