"""The whole pipeline with embeddings on, at 100k / 300k / 1M records on one box, as one JSON object.

Records are real short text: sentences of Debian package descriptions (tests/realtext.py), each
record one to three sentences drawn from one Debian section (its domain), so texts read like a
user's and are nearly all distinct (the embed stage encodes each distinct text once). The target of
dsir and tarot is 2,000 such records of section `python`, drawn with another seed.

Each phase is its own `curate` process, so its peak RSS (wait4) and CPU seconds are its own:

    ingest  read + validate + n-grams + embeddings (`--backend static --static-fit 8192`: MiniLM
            encodes 8,192 pool texts once, the fitted static model the rest) + k-means (k = sqrt(n))
    dedup   SemDeDup within each cluster (eps 0.05)
    dsir | coverage (prototypicality scores) | smart    each a 10 % selection; tarot 2,000 records

    nice -n 10 python benchmarks/scale.py --sizes 100000 300000 1000000

``--ray-records N`` adds the previous comparison of the Ray executor with the local one (ingest
without embeddings + dsir) on the first N records.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHASES = ["ingest", "dedup", "dsir", "tarot", "coverage", "smart"]
TARGET_DOMAIN = "python"
TAROT_BUDGET = 2_000  # = the target's size: targeted selection picks a multiple of it, not a pool share


def run(args: list[str]) -> tuple[dict, float, float, float]:
    """(JSON output, wall seconds, peak RSS MB, CPU seconds) of one child process.

    CPU seconds (user + system) are what the growth claim rests on: on a shared machine wall time
    swings with other load, CPU time barely does. (Ray workers' CPU is not in it: compare wall time.)"""
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
        return json.loads(out.read()), seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def sentences() -> pl.DataFrame:
    """(domain, sentence) of every Debian description with 40+ sections' worth of labels."""
    from tests.realtext import corpus

    df = corpus("debian", n_domains=40)
    split = df.with_columns(pl.col("text").map_elements(_split, return_dtype=pl.List(pl.String))).explode("text")
    split = split.filter(pl.col("text").str.len_chars() >= 20).unique("text", maintain_order=True)
    return split.select("domain", "text")


def _split(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s.strip()]


def recombine(sents: pl.DataFrame, n: int, seed: int, only: str | None = None) -> pl.DataFrame:
    """n records of 1-3 (10 / 50 / 40 %) sentences of one domain each, domains weighted by size."""
    rng = np.random.default_rng(seed)
    if only is not None:
        sents = sents.filter(pl.col("domain") == only)
    sents = sents.sort("domain", maintain_order=True)
    domains, starts, sizes = np.unique(sents["domain"].to_numpy(), return_index=True, return_counts=True)
    dom = rng.choice(len(domains), size=n, p=sizes / sizes.sum())
    k = rng.choice([1, 2, 3], size=n, p=[0.1, 0.5, 0.4])
    owner = np.repeat(np.arange(n), k)
    picks = starts[dom[owner]] + (rng.random(len(owner)) * sizes[dom[owner]]).astype(np.int64)
    text = (
        pl.DataFrame({"doc": owner, "s": sents["text"].gather(picks)})
        .group_by("doc", maintain_order=True)
        .agg(pl.col("s").str.join(" "))["s"]
    )
    return pl.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "text": text, "domain": domains[dom]})


def phase_generate(work: Path, sizes: list[int]) -> None:
    sents = sentences()
    full = recombine(sents, max(sizes), seed=0)
    for n in sizes:
        full.head(n).write_ndjson(work / f"pool-{n}.jsonl")
    recombine(sents, 2_000, seed=1, only=TARGET_DOMAIN).write_ndjson(work / "target.jsonl")
    stats = {
        "sentences": sents.height,
        "domains": int(sents["domain"].n_unique()),
        "distinct_text_fraction": round(full["text"].n_unique() / full.height, 4),
        "mean_chars": round(float(full["text"].str.len_chars().mean()), 1),
    }
    (work / "data.json").write_text(json.dumps(stats))


def pipeline(work: Path, n: int, static_fit: int) -> dict:
    home = work / f"home-{n}"
    h = ["--home", str(home)]
    target = str(work / "target.jsonl")
    phases: dict[str, dict] = {}

    def phase(name: str, args: list[str]) -> dict:
        out, wall, rss, cpu = run([*args, *h])
        phases[name] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(rss, 1)}
        return out

    embed = ["--backend", "static", "--static-fit", str(static_fit)]
    report = phase("ingest", ["ingest", str(work / f"pool-{n}.jsonl"), "--pool", "bench", *embed])
    phases["ingest"]["stages_seconds"] = {k: v.get("seconds") for k, v in report["stages"].items()}
    phases["ingest"]["clusters"] = report["stages"]["cluster"]["k"]
    dedup = phase("dedup", ["dedup", "--pool", "bench", "--eps", "0.05"])
    phases["dedup"]["removed"] = dedup.get("metrics", {}).get("removed", dedup.get("removed"))
    sel = ["select", "--pool", "bench", "--budget", "0.1", "--seed", "0"]
    phase("dsir", [*sel, "--selector", "dsir", "--target", target])
    # tarot's cost grows with the budget × the target (transport problems of that size), so a fixed
    # budget: the phase then measures what grows with the pool (whitening, neighbour search).
    phase("tarot", [*sel[:4], str(TAROT_BUDGET), *sel[5:], "--selector", "tarot", "--target", target])
    phase("coverage", [*sel, "--selector", "coverage", "--param", "score=prototypicality"])
    phase("smart", [*sel, "--selector", "smart"])
    total_wall = sum(p["seconds"] for p in phases.values())
    point = {
        "records": n,
        "phases": phases,
        "total_seconds": round(total_wall, 1),
        "total_cpu_seconds": round(sum(p["cpu_seconds"] for p in phases.values()), 1),
        "max_peak_rss_mb": max(p["peak_rss_mb"] for p in phases.values()),
        "load_after": os.getloadavg(),
    }
    with open(work / "points.jsonl", "a") as f:  # survives an interrupted run of several sizes
        f.write(json.dumps(point) + "\n")
    return point


def ray_comparison(work: Path, n: int) -> dict:
    """Ingest without embeddings + dsir, local beside ray (one local cluster per CLI process)."""
    out = {"records": n, "workers": os.cpu_count(), "note": "CLI processes: ray times include starting a cluster"}
    for kind in ("local", "ray"):
        h = ["--home", str(work / f"ray-cmp-{kind}"), "--executor", kind]
        _, t_ing, _, _ = run(["ingest", str(work / f"pool-{n}.jsonl"), "--pool", "b", "--no-embed", *h])
        doc, t_dsir, _, _ = run(["select", "--pool", "b", "--selector", "dsir", "--budget", "0.1", "--target",
                                 str(work / "target.jsonl"), *h])  # fmt: skip
        out[kind] = {"ingest_seconds": round(t_ing, 2), "dsir_seconds": round(t_dsir, 2), "manifest": doc["id"]}
    out["ingest_overhead_ratio"] = round(out["ray"]["ingest_seconds"] / out["local"]["ingest_seconds"], 2)
    out["dsir_overhead_ratio"] = round(out["ray"]["dsir_seconds"] / out["local"]["dsir_seconds"], 2)
    out["same_manifest"] = out["ray"]["manifest"] == out["local"]["manifest"]
    return out


def growth(points: list[dict]) -> dict:
    """Per phase, CPU seconds per 1k records at each size: flat means linear."""
    return {
        name: [round(1000 * p["phases"][name]["cpu_seconds"] / p["records"], 3) for p in points] for name in PHASES
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=["generate"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help="Keep the generated files and homes here (default: a temp dir).")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--static-fit", type=int, default=8192, help="Pool texts the static model is fitted on.")
    ap.add_argument("--ray-records", type=int, default=0, help="Also compare ray with local on N records (0 = skip).")
    args = ap.parse_args()
    load_before = os.getloadavg()
    if args.phase == "generate":
        phase_generate(args.workdir, args.sizes)
        return
    with tempfile.TemporaryDirectory(prefix="curate-scale-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        sizes = sorted(set(args.sizes) | ({args.ray_records} - {0}))
        # Generated in a child: a parent holding the 1M-row frame would lend its RSS to every forked phase.
        gen = [sys.executable, __file__, "--phase", "generate", "--workdir", str(work), "--sizes", *map(str, sizes)]
        subprocess.run(gen, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        gen_s = time.perf_counter() - t0
        points = [pipeline(work, n, args.static_fit) for n in sorted(args.sizes)]
        result = {
            "benchmark": "scale",
            "data": {**json.loads((work / "data.json").read_text()), "generate_seconds": round(gen_s, 1)},
            "points": points,
            "cpu_ms_per_record": growth(points),
            "max_peak_rss_mb": max(p["max_peak_rss_mb"] for p in points),
            "machine": {"cpus": os.cpu_count(), "load_before": load_before},
        }
        if args.ray_records:
            result["ray_vs_local"] = ray_comparison(work, args.ray_records)
        result["machine"]["load_after"] = os.getloadavg()
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
