"""REST load: 32 concurrent clients on loopback mixing manifest reads and job polls; one JSON object.

The baseline, measured in the same run with the same clients, is ``GET /healthz`` (framework plus
one catalog round trip), so the ratio shows what our routes cost over the bare stack.

    python benchmarks/api_load.py --clients 32 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.apiserver import LiveServer  # noqa: E402
from tests.test_api_flow import jsonl_bytes, synthetic_rows  # noqa: E402


def hammer(url: str, clients: int, seconds: float, paths: list[tuple[str, dict]]) -> dict:
    """``clients`` threads, each with its own connection, cycling through ``paths`` until time is up."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def run(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            start.wait()
            k = i
            while time.perf_counter() < stop_at[0]:
                path, headers = paths[k % len(paths)]
                k += 1
                t0 = time.perf_counter()
                try:
                    r = http.get(path, headers=headers)
                    ok = r.status_code in (200, 304)
                except httpx.HTTPError:
                    ok = False
                latencies[i].append(time.perf_counter() - t0)
                errors[i] += not ok

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at.append(time.perf_counter() + seconds)
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {
        "requests": int(len(lat)),
        "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "errors": int(sum(errors)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0, help="Per phase (bounded at 120).")
    ap.add_argument("--records", type=int, default=5000)
    args = ap.parse_args()
    seconds = min(args.seconds, 120.0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "corpus.jsonl"
        src.write_bytes(jsonl_bytes(synthetic_rows(args.records)))
        srv = LiveServer(Path(tmp) / "home", workers=1, env={"CURATE_JOB_POLL_SECONDS": "0.2"}).start()
        try:
            http = srv.client()
            with open(src, "rb") as f:
                http.post("/v1/pools", data={"name": "c", "domain_field": "topic"}, files={"file": ("c.jsonl", f)})
            job = http.post("/v1/selections", json={"pool": "c", "selector": "stratified", "budget": 1000}).json()
            while (done := http.get(f"/v1/jobs/{job['id']}").json())["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)
            mid = done["result"]["manifest_id"]
            etag = http.get(f"/v1/manifests/{mid}/subset").headers["etag"]
            mix = [
                (f"/v1/manifests/{mid}", {}),
                (f"/v1/jobs/{job['id']}", {}),
                ("/v1/manifests", {}),
                (f"/v1/manifests/{mid}/subset", {"If-None-Match": etag}),
                (f"/v1/manifests/{mid}/subset", {}),
                (f"/v1/jobs/{job['id']}", {}),
            ]
            baseline = hammer(srv.url, args.clients, seconds, [("/healthz", {})])
            ours = hammer(srv.url, args.clients, seconds, mix)
        finally:
            srv.stop()
    print(
        json.dumps(
            {
                "benchmark": "api_load",
                "clients": args.clients,
                "seconds_per_phase": seconds,
                "mix": "manifest json, job poll, manifest list, subset 304, subset parquet (1000 rows), job poll",
                "curate_routes": ours,
                "baseline_healthz": baseline,
                "throughput_ratio_vs_healthz": round(ours["requests_per_s"] / baseline["requests_per_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
