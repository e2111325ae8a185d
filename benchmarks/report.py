"""Selection report on a 1M-row manifest: wall time and peak RSS, each in a fresh process, beside
(a) the same report on a 10k-row manifest of the same pool and (b) `manifest verify` of the 1M-row
manifest (reads and checksums the subset: the floor for touching a manifest at all). One JSON out.

    python benchmarks/report.py --records 1200000 --selected 1000000 --dim 384

The pool is generated (bring-your-own vectors, benchmarks/synthetic_pool.py); embedding a million
texts on 2 cores would take hours. Target: < 30 s and < 1 GB RSS for the 1M-row report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = """
import json, sys, time
from pathlib import Path
from curate.config import Settings
home, what, manifest, out = sys.argv[1:5]
settings = Settings(home=Path(home))
start = time.perf_counter()
if what == "report":
    from curate.report import write_report
    data = write_report(settings, Path(manifest), Path(out))
    extra = {"metrics": {m["name"]: [m.get("selection"), m.get("random")] for m in data["metrics"]},
             "html_bytes": Path(out).stat().st_size}
else:
    from curate.manifest import verify
    extra = {"problems": verify(Path(manifest))}
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (the pool builder)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
rss = int(hwm.split()[1]) / 1024
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(rss, 1), **extra}))
"""


def _child(home: Path, what: str, manifest: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), what, manifest, str(out)],
        capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_200_000)
    ap.add_argument("--selected", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=100)
    args = ap.parse_args()

    from benchmarks.synthetic_pool import build, vectors
    from curate.select import run_selection

    x, mode, loss = vectors(args.records, 0, dim=args.dim)
    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    built = build(root / "home", x, mode, loss, args.clusters)
    del x, mode, loss
    settings = built["settings"]
    t = time.perf_counter()
    big = run_selection(settings, pool="bench", selector="random", budget=args.selected, seed=0)
    select_seconds = time.perf_counter() - t
    small = run_selection(settings, pool="bench", selector="random", budget=args.small, seed=0)
    result = {
        "benchmark": "report",
        "pool_records": args.records,
        "dim": args.dim,
        "ingest_seconds": built["ingest_seconds"],
        "select_seconds_1m": round(select_seconds, 2),
        "report_large": {"rows": args.selected, **_child(root / "home", "report", big["path"], root / "big.html")},
        "report_small": {"rows": args.small, **_child(root / "home", "report", small["path"], root / "small.html")},
        "verify_large_baseline": _child(root / "home", "verify", big["path"], root / "unused"),
    }
    large = result["report_large"]
    result["within_target"] = large["seconds"] < 30 and large["peak_rss_mb"] < 1024
    result["large_vs_verify_time_ratio"] = round(
        large["seconds"] / max(result["verify_large_baseline"]["seconds"], 1e-3), 2
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
