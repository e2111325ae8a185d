"""Cost vs pool size, and the Ray executor's overhead, printed as one JSON object.

For each size (100k, 300k, 1M generated records by default), each phase is a separate `curate`
process so its peak RSS (wait4) is its own: ingest --no-embed (read + validate + n-grams), dsir
(featurise target, fit, score, Gumbel top-k, manifest) and coverage (CCS on a numeric record field;
embedding 1M records on 2 CPU cores would take hours). Growth should be linear in time and flat-ish
in memory: nothing holds the text, only per-record vectors of a few bytes.

Then, on the `--ray-records` pool, ingest --no-embed and dsir run again with `--executor ray` (a
local Ray cluster with one worker per CPU), beside the local executor on the same file: the overhead
ratio, and a check that both manifests have the same id.

    python benchmarks/scale.py --sizes 100000 300000 1000000 --ray-records 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dsir import generate  # noqa: E402 - same generated records as the DSIR benchmark


def run(args: list[str]) -> tuple[dict, float, float]:
    """(JSON output, wall seconds, peak RSS MB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "curate.cli", *args, "--json"], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise SystemExit(f"failed: curate {' '.join(args)}\n{err.read()[-3000:]}")
        out.seek(0)
        return json.loads(out.read()), seconds, usage.ru_maxrss / 1024


def point(work: Path, path: Path, target: Path, executor: str, tag: str, coverage: bool) -> dict:
    home = work / f"home-{tag}"
    ex = ["--executor", executor]
    ingest, t_ing, rss_ing = run(["ingest", str(path), "--pool", "bench", "--no-embed", *ex, "--home", str(home)])
    sel = ["select", "--pool", "bench", "--budget", "0.1", "--seed", "0", "--home", str(home)]
    dsir, t_dsir, rss_dsir = run([*sel, "--selector", "dsir", "--target", str(target), *ex])
    out = {
        "records": ingest["pool"]["n_records"],
        "ingest_seconds": round(t_ing, 2),
        "ingest_peak_rss_mb": round(rss_ing, 1),
        "dsir_seconds": round(t_dsir, 2),
        "dsir_peak_rss_mb": round(rss_dsir, 1),
        "dsir_manifest": dsir["id"],
    }
    if coverage:
        cov, t_cov, rss_cov = run([*sel, "--selector", "coverage", "--param", "score_column=loss"])
        out.update(coverage_seconds=round(t_cov, 2), coverage_peak_rss_mb=round(rss_cov, 1))
    return out


def phase_generate(work: Path, sizes: list[int]) -> None:
    """pool-N.jsonl (the first N of one generated pool, plus a numeric `loss` field) and a d0 target."""
    full = work / "full.jsonl"
    generate(full, max(sizes), seed=0)
    frame = pl.read_ndjson(full)
    frame = frame.with_columns(loss=pl.Series(np.random.default_rng(1).gamma(2.0, 1.0, frame.height)))
    generate(work / "tgt.jsonl", 4_000, seed=1, start_id=10**8)
    pl.read_ndjson(work / "tgt.jsonl").filter(pl.col("domain") == "d0").write_ndjson(work / "target.jsonl")
    for n in sizes:
        frame.head(n).write_ndjson(work / f"pool-{n}.jsonl")
    full.unlink()


def phase_warm(path: Path, target: Path, work: Path) -> dict:
    """Local vs ray in one process, the cluster started beforehand: the overhead of the executor itself."""
    from curate.config import Settings
    from curate.executors import ExecutorSpec, make_executor, use_executor
    from curate.ingest import IngestParams, ingest
    from curate.select import run_selection

    t0 = time.perf_counter()
    ray_ex = make_executor(ExecutorSpec(kind="ray"))
    warmup = work / "warmup.jsonl"  # the first map on a fresh cluster also starts its worker processes
    warmup.write_text("".join(target.read_text().splitlines(keepends=True)[:200]))
    with use_executor(ray_ex):
        ingest(Settings(home=work / "warmup"), warmup, "w", IngestParams(embed=False, executor="ray"))
        run_selection(Settings(home=work / "warmup"), pool="w", selector="dsir", budget=10, target=str(target))
    out: dict = {"cluster_start_and_warmup_seconds": round(time.perf_counter() - t0, 2)}
    for kind, ex in (("local", "local"), ("ray", ray_ex)):
        s = Settings(home=work / f"warm-{kind}")
        with use_executor(ex):
            t0 = time.perf_counter()
            ingest(s, path, "bench", IngestParams(embed=False, executor=kind))
            t1 = time.perf_counter()
            doc = run_selection(s, pool="bench", selector="dsir", budget=0.1, seed=0, target=str(target))
            t2 = time.perf_counter()
        out[kind] = {"ingest_seconds": round(t1 - t0, 2), "dsir_seconds": round(t2 - t1, 2), "manifest": doc["id"]}
    out["ingest_overhead_ratio"] = round(out["ray"]["ingest_seconds"] / out["local"]["ingest_seconds"], 2)
    out["dsir_overhead_ratio"] = round(out["ray"]["dsir_seconds"] / out["local"]["dsir_seconds"], 2)
    out["same_manifest"] = out["ray"]["manifest"] == out["local"]["manifest"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=["warm", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--ray-records", type=int, default=100_000, help="0 = skip the Ray comparison")
    args = ap.parse_args()
    if args.phase == "generate":
        phase_generate(args.workdir, args.sizes)
        return
    if args.phase == "warm":
        n = args.ray_records
        print(json.dumps(phase_warm(args.workdir / f"pool-{n}.jsonl", args.workdir / "target.jsonl", args.workdir)))
        return
    with tempfile.TemporaryDirectory(prefix="curate-scale-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        # Generated in a child: a parent holding the 1M-row frame would lend its RSS to every forked phase.
        sizes = sorted(set(args.sizes) | ({args.ray_records} - {0}))
        gen = [sys.executable, __file__, "--phase", "generate", "--workdir", str(work), "--sizes", *map(str, sizes)]
        subprocess.run(gen, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        target = work / "target.jsonl"
        files = {n: work / f"pool-{n}.jsonl" for n in sizes}
        gen_s = time.perf_counter() - t0
        points = [point(work, files[n], target, "local", f"local-{n}", coverage=True) for n in sorted(args.sizes)]
        first, last = points[0], points[-1]
        scale = last["records"] / first["records"]
        result = {
            "benchmark": "scale",
            "generate_seconds": round(gen_s, 1),
            "points": points,
            "growth": {
                "size_ratio": scale,
                "ingest_time_ratio": round(last["ingest_seconds"] / first["ingest_seconds"], 2),
                "dsir_time_ratio": round(last["dsir_seconds"] / first["dsir_seconds"], 2),
                "max_peak_rss_mb": max(
                    max(p["ingest_peak_rss_mb"], p["dsir_peak_rss_mb"], p.get("coverage_peak_rss_mb", 0))
                    for p in points
                ),
            },
            "machine": {"cpus": os.cpu_count()},
        }
        if args.ray_records:
            n = args.ray_records
            local = point(work, files[n], target, "local", f"cmp-local-{n}", coverage=False)
            ray = point(work, files[n], target, "ray", f"cmp-ray-{n}", coverage=False)
            result["ray_vs_local"] = {
                "records": n,
                "workers": os.cpu_count(),
                "local": local,
                "ray": ray,
                "ingest_overhead_ratio": round(ray["ingest_seconds"] / local["ingest_seconds"], 2),
                "dsir_overhead_ratio": round(ray["dsir_seconds"] / local["dsir_seconds"], 2),
                "same_manifest": ray["dsir_manifest"] == local["dsir_manifest"],
                "note": "CLI processes: ray times include starting a local cluster in each",
            }
            warm = [sys.executable, __file__, "--phase", "warm", "--workdir", str(work), "--ray-records", str(n)]
            proc = subprocess.run(warm, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if proc.returncode:
                raise SystemExit(f"warm phase failed:\n{proc.stderr[-3000:]}")
            result["ray_vs_local_warm_cluster"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
