"""Server memory while streaming a large subset (default 1M rows) as Parquet, JSONL and CSV; one JSON object.

The server's RSS is sampled every 20 ms during each download, first of a tenth of the rows, then of
all of them: flat streaming shows as the same small growth at both sizes. The baseline, measured in
the same run, is the RSS growth of rendering the whole subset in memory (a non-streaming endpoint).

    python benchmarks/api_download.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.config import Settings  # noqa: E402
from curate.ingest import IngestParams, ingest  # noqa: E402
from curate.select import run_selection  # noqa: E402
from tests.apiserver import LiveServer  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stream(url: str, path: str, pid: int) -> dict:
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.02)

    before = rss_mb(pid)
    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    size = 0
    with httpx.stream("GET", url + path, timeout=600) as r:
        for block in r.iter_bytes(1 << 20):
            size += len(block)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {
        "bytes": size,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "server_rss_before_mb": round(before, 1),
        "server_rss_growth_mb": round(max(samples + [before]) - before, 1),
    }


_IN_MEMORY = """
import sys, polars as pl
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
pl.DataFrame({"a": [1]}).write_ndjson()  # warm up like the server, then measure the rendering alone
before = rss()
body = pl.read_parquet(sys.argv[1]).write_ndjson().encode()
print(rss() - before, len(body))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pool.jsonl"
        with open(src, "w") as f:
            for i in range(args.rows):
                f.write(f'{{"id": "rec-{i:09d}", "text": "record {i} of the benchmark pool", "domain": "d{i % 7}"}}\n')
        settings = Settings(home=Path(tmp) / "home")
        t0 = time.perf_counter()
        ingest(settings, src, "big", IngestParams(embed=False))
        small = run_selection(settings, pool="big", selector="random", budget=args.rows // 10, seed=0)
        doc = run_selection(settings, pool="big", selector="random", budget=args.rows, seed=0)
        setup = time.perf_counter() - t0
        subset = Path(doc["path"]) / "subset.parquet"
        base = subprocess.run(
            [sys.executable, "-c", _IN_MEMORY, str(subset)], capture_output=True, text=True, check=True
        )
        base_mb, base_bytes = base.stdout.split()
        srv = LiveServer(settings.root, workers=0).start()
        try:
            pid = srv.proc.pid
            out = {}
            for fmt in ("parquet", "jsonl", "csv"):  # a tenth of the rows first (also warms up), then all
                tenth = stream(srv.url, f"/v1/manifests/{small['id']}/subset?format={fmt}", pid)
                out[fmt] = stream(srv.url, f"/v1/manifests/{doc['id']}/subset?format={fmt}", pid)
                out[fmt]["server_rss_growth_mb_at_tenth_rows"] = tenth["server_rss_growth_mb"]
        finally:
            srv.stop()
    worst = max(v["server_rss_growth_mb"] for v in out.values())
    print(
        json.dumps(
            {
                "benchmark": "api_download",
                "rows": args.rows,
                "setup_seconds": round(setup, 1),
                "streamed": out,
                "baseline_in_memory_jsonl": {"rss_growth_mb": round(float(base_mb), 1), "bytes": int(base_bytes)},
                "worst_streaming_growth_vs_in_memory": round(worst / max(float(base_mb), 1e-9), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
