"""A real ``curate serve`` (and optionally ``curate worker``) in subprocesses, for API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``curate serve`` on a free loopback port; ``kill9`` and ``start`` again to test restarts."""

    def __init__(self, home: Path, *, workers: int = 1, env: dict | None = None, token: str | None = None) -> None:
        self.home, self.workers, self.token = home, workers, token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "CURATE_HOME": str(home),
            "CURATE_JOB_POLL_SECONDS": "0.2",
            "CURATE_JOB_HEARTBEAT_SECONDS": "0.5",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log = home.parent / f"serve-{self.port}.log"

    def start(self, timeout: float = 180.0) -> LiveServer:  # a loaded 2-core CI box needs minutes to import torch
        cmd = [sys.executable, "-m", "curate.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def client(self, token: str | None = None) -> httpx.Client:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class LiveWorker:
    """``curate worker`` as its own process (the docker-compose topology)."""

    def __init__(self, env: dict, log: Path) -> None:
        with open(log, "ab") as err:
            cmd = [sys.executable, "-m", "curate.cli", "worker"]
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120.0, until=("succeeded", "failed", "cancelled")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
