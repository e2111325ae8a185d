"""Per-call overhead of online mixing over REST: ``next`` + ``feedback`` round trips at batch 256.

Starts a real ``uvicorn`` server (1 worker) on a temp home holding the papers pool (no
embeddings needed), then times, interleaved in the same run: GET /healthz (the HTTP floor of
this machine, the baseline), ``next`` with and without texts, and ``feedback``.

    python benchmarks/odm_service.py [--calls 200] [--database-url postgresql+psycopg://...]
Prints one JSON object (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from curate.config import Settings
from curate.ingest import IngestParams, ingest

REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(settings: Settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "CURATE_HOME": str(settings.home), "PYTHONPATH": str(REPO)}
    if settings.database_url:
        env["CURATE_DATABASE_URL"] = settings.database_url
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, cwd=REPO, start_new_session=True)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("server did not start")


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url=args.database_url)
        ingest(settings, REPO / "data" / "papers.jsonl", "papers", IngestParams(domain_field="topic", embed=False))
        port = _port()
        proc = _serve(settings, port)
        try:
            times: dict[str, list[float]] = {"healthz": [], "next": [], "next_no_text": [], "feedback": []}
            rt: list[float] = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                body = {"pool": "papers", "params": {"warmup_steps": 20, "micro_batches": 8}, "seed": 0}
                sid = http.post("/v1/mixing/sessions", json=body).json()["id"]

                def call(kind: str, method: str, url: str, payload: dict | None = None) -> dict:
                    t0 = time.perf_counter()
                    resp = http.request(method, url, json=payload)
                    times[kind].append((time.perf_counter() - t0) * 1000)
                    resp.raise_for_status()
                    return resp.json()

                for i in range(args.calls + 10):  # 10 warm-up rounds are discarded below
                    call("healthz", "GET", "/healthz")
                    kind = "next" if i % 2 == 0 else "next_no_text"
                    batch = call(kind, "POST", f"/v1/mixing/sessions/{sid}/next",
                                 {"batch_size": args.batch_size, "with_text": kind == "next"})  # fmt: skip
                    losses = {m["group"]: 2.0 + len(m["group"]) / 10 for m in batch["micro_batches"]}
                    call("feedback", "POST", f"/v1/mixing/sessions/{sid}/feedback",
                         {"step": batch["step"], "losses": losses})  # fmt: skip
                    rt.append(times[kind][-1] + times["feedback"][-1])
            for k in times:  # drop the warm-up rounds
                times[k] = times[k][10 if k in ("healthz", "feedback") else 5 :]
            rt = rt[10:]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = {
        "benchmark": "odm_service",
        "backend": "postgres" if args.database_url else "sqlite",
        "batch_size": args.batch_size,
        "calls": args.calls,
        "baseline_healthz_ms": _stats(times["healthz"]),
        "next_ms": _stats(times["next"]),
        "next_without_text_ms": _stats(times["next_no_text"]),
        "feedback_ms": _stats(times["feedback"]),
        "round_trip_ms (next alternating with/without text, + feedback)": _stats(rt),
        "round_trip_p50_over_healthz_p50": round(float(np.median(rt) / np.median(times["healthz"])), 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
