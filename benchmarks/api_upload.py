"""Server memory during compression-bomb uploads next to a normal upload of the same compressed size.

Against a real ``curate serve`` (``tests/apiserver.py``), each upload kind is posted ``--repeats``
times, alternating kinds, each to a fresh server that has ingested one two-record file (so its imports
are done). Per upload: the HTTP status and the growth of the server's peak RSS (``VmHWM``, reset
before the upload through ``/proc/PID/clear_refs``) over its RSS before it.

- ``normal``: real text (data/papers.jsonl, repeated with fresh ids) gzipped to ~1 MB, 201.
- ``bomb_line``: ~1 MB of gzip whose second line is 1 GiB long, 413 (max_record_bytes).
- ``bomb_lines``: ~1.5 MB of gzip of 512 MiB of short lines, 413 (max_expanded_bytes).

The server's upload limit is ``--upload-limit`` (default 8 MB, so the decompressed limit is the
default 10x = 80 MB). ``--repo DIR`` runs the server from another checkout (e.g. an older commit
exported with ``git archive``) to measure the code before the limits.

    nice -n 10 python benchmarks/api_upload.py --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.apiserver import LiveServer  # noqa: E402
from tests.bombs import many_lines_gz, one_line_gz, proc_bytes, reset_peak  # noqa: E402


def normal_payload(target_bytes: int) -> bytes:
    """Real abstracts, repeated with fresh ids until the gzip reaches ``target_bytes``."""
    rows = [json.loads(line) for line in (REPO / "data" / "papers.jsonl").read_text().splitlines()]
    out, copy = [], 0
    while True:
        out += [json.dumps({**r, "id": f"{r['id']}-{copy}"}) + "\n" for r in rows]
        data = gzip.compress("".join(out).encode(), 6)
        if len(data) >= target_bytes:
            return data
        copy += 1


def post(server: LiveServer, name: str, filename: str, data: bytes) -> dict:
    pid = server.proc.pid
    exact = reset_peak(pid)
    before = proc_bytes(pid, "VmRSS")
    t0 = time.perf_counter()
    r = server.client().post("/v1/pools", data={"name": name}, files={"file": (filename, data)}, timeout=900)
    seconds = time.perf_counter() - t0
    grown = proc_bytes(pid, "VmHWM") - before
    limit = r.json().get("error", {}).get("details", {}).get("limit") if r.status_code != 201 else None
    return {
        "status": r.status_code,
        "limit": limit,
        "rss_growth_mb": round(grown / 2**20, 1),
        "seconds": round(seconds, 2),
        "exact_peak": exact,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--upload-limit", type=int, default=8_000_000)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout the server runs from")
    args = ap.parse_args()

    normal = normal_payload(1_000_000)
    payloads = {
        "normal": ("normal.jsonl.gz", normal),
        "bomb_line": ("line.jsonl.gz", one_line_gz(1024)),
        "bomb_lines": ("lines.jsonl.gz", many_lines_gz(512)),
    }
    expanded = {"normal": len(gzip.decompress(normal)), "bomb_line": (1 << 30) + 30, "bomb_lines": 512 << 20}
    runs: dict[str, list[dict]] = {k: [] for k in payloads}
    tiny = b'{"text": "one"}\n{"text": "two"}\n'
    env = {"CURATE_MAX_UPLOAD_BYTES": str(args.upload_limit), "PYTHONPATH": str(args.repo.resolve())}
    for i in range(args.repeats):
        for kind, (filename, data) in payloads.items():
            # A fresh server per upload: memory an earlier upload left in the allocators would hide growth.
            with tempfile.TemporaryDirectory() as tmp:
                server = LiveServer(Path(tmp) / "home", workers=0, env=env).start()
                try:
                    post(server, "warm", "warm.jsonl", tiny)  # the ingest stack imported before measuring
                    runs[kind].append(post(server, f"{kind}-{i}", filename, data))
                finally:
                    server.stop()
    out = {
        "benchmark": "api_upload",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "server_repo": str(args.repo.resolve()),
        "upload_limit_bytes": args.upload_limit,
        "repeats": args.repeats,
        "uploads": {
            kind: {
                "compressed_bytes": len(payloads[kind][1]),
                "expanded_bytes": expanded[kind],
                "status": sorted({r["status"] for r in rs}),
                "limit": sorted({str(r["limit"]) for r in rs}),
                "rss_growth_mb_median": statistics.median(r["rss_growth_mb"] for r in rs),
                "rss_growth_mb": [r["rss_growth_mb"] for r in rs],
                "seconds_median": statistics.median(r["seconds"] for r in rs),
            }
            for kind, rs in runs.items()
        },
    }
    base = out["uploads"]["normal"]["rss_growth_mb_median"] or 1.0
    out["rss_growth_ratio_vs_normal"] = {
        k: round(v["rss_growth_mb_median"] / base, 2) for k, v in out["uploads"].items() if k != "normal"
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
