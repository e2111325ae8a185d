"""docker-compose.yml is parsed and checked against the code it runs (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from curate.cli import main

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(service: dict) -> dict:
    env = service["environment"]
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env


def _mounts(service: dict) -> dict[str, str]:
    """container path → source (named volume or host path)."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_services_volumes_and_healthcheck():
    doc = _compose()
    services = doc["services"]
    assert {"api", "worker", "postgres"} <= set(services)
    pg = services["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    data_dir = next(src for dst, src in _mounts(pg).items() if dst == "/var/lib/postgresql/data")
    assert data_dir in doc["volumes"]  # a named volume: the catalog outlives the container
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_and_worker_share_catalog_and_artifacts():
    doc = _compose()
    services = doc["services"]
    api, worker, pg = _env(services["api"]), _env(services["worker"]), _env(services["postgres"])
    assert api["CURATE_DATABASE_URL"] == worker["CURATE_DATABASE_URL"]
    url = make_url(api["CURATE_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg" and url.host == "postgres"
    assert (url.username, url.password, url.database) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    home = api["CURATE_HOME"]
    assert worker["CURATE_HOME"] == home
    volume = _mounts(services["api"])[home]
    assert _mounts(services["worker"])[home] == volume and volume in doc["volumes"]
    assert services["worker"].get("image") == services["api"].get("image")


def test_commands_exist_and_the_public_bind_has_tokens():
    services = _compose()["services"]
    api_cmd, worker_cmd = services["api"]["command"], services["worker"]["command"]
    assert api_cmd[:2] == ["curate", "serve"] and worker_cmd[:2] == ["curate", "worker"]
    assert api_cmd[api_cmd.index("--workers") + 1] == "0"  # jobs run in the worker service only
    for cmd in (api_cmd, worker_cmd):
        options = {opt for p in main.commands[cmd[1]].params for opt in p.opts}
        assert {a for a in cmd[2:] if a.startswith("--")} <= options
    host = api_cmd[api_cmd.index("--host") + 1]
    assert host == "0.0.0.0"
    # `curate serve` refuses a non-loopback host without tokens: compose must require them.
    assert _env(services["api"])["CURATE_API_TOKENS"].startswith("${CURATE_API_TOKENS:?")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'pip install ".[postgres]"' in dockerfile and "/healthz" in dockerfile
