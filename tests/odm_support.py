"""Helpers for the online-mixing tests: catalog backends, a real uvicorn server, a lossy proxy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from curate.config import Settings
from curate.ingest import IngestParams, ingest

REPO = Path(__file__).resolve().parents[1]
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def reachable_postgres() -> str | None:
    """A Postgres base URL to test on, None to skip; fails if one was configured but is unreachable."""
    configured = os.environ.get("CURATE_TEST_DATABASE_URL")
    url = configured or PG_DEFAULT
    try:
        import psycopg

        with psycopg.connect(_libpq(url), connect_timeout=3):
            pass
    except Exception as exc:  # noqa: BLE001
        if configured:
            pytest.fail(f"CURATE_TEST_DATABASE_URL={configured} is unreachable: {exc}")
        return None
    return url


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]


def make_schema(url: str) -> tuple[str, str]:
    """A fresh schema (other suites share the database): returns (url pinned to it, schema name)."""
    import psycopg

    schema = f"odm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def synthetic_rows() -> list[dict]:
    """Three domains of different sizes, so per-domain epochs wrap at different steps."""
    sizes = {"easy": 12, "mid": 20, "hard": 28}
    return [
        {"id": f"{d}-{i:03d}", "text": f"record {i} of the {d} domain, word{i % 7} token{i % 5}", "domain": d}
        for d, n in sizes.items()
        for i in range(n)
    ]


def ingest_pools(settings: Settings, tmp: Path) -> None:
    import json

    synth = tmp / "synth.jsonl"
    synth.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    ingest(settings, synth, "synth", IngestParams(embed=False))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn --factory api.app:create_app`` in its own process group, killable with SIGKILL."""

    def __init__(self, settings: Settings, workers: int = 1) -> None:
        self.settings, self.workers = settings, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "CURATE_HOME": str(self.settings.home), "PYTHONPATH": str(REPO)}
        if self.settings.database_url:
            env["CURATE_DATABASE_URL"] = self.settings.database_url
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not become healthy in 60 s")

    def kill(self) -> None:
        """SIGKILL the whole group (uvicorn's supervisor and its workers): no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class LossyProxy:
    """A real TCP proxy that forwards HTTP/1.1 requests and drops the response of chosen calls.

    The server does process a dropped request; the client sees the connection die, exactly as
    when a network path fails after the server committed.
    """

    def __init__(self, upstream_port: int, drop: set[str]) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.drop = set(drop)  # path suffixes whose *first* response is dropped
        self.dropped: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_message(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _handle(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            buf_c = buf_u = b""
            while True:
                got = self._read_message(client, buf_c)
                if got is None:
                    return
                request, buf_c = got
                path = request.split(b" ", 2)[1].decode()
                upstream.sendall(request)
                got = self._read_message(upstream, buf_u)
                if got is None:
                    return
                response, buf_u = got
                hit = next((s for s in self.drop if path.endswith(s)), None)
                if hit is not None:
                    self.drop.discard(hit)
                    self.dropped.append(path)
                    return  # close the client connection without a response
                client.sendall(response)

    def close(self) -> None:
        self.sock.close()
