"""Ingest throughput and memory, per stage, printed as one JSON object.

Phases run in their own subprocess so each peak RSS is that phase's alone:
- ingest: `curate ingest --no-embed` (read + validate + fingerprint + n-grams) on N generated records;
- embed: our embedding stage vs a bare `SentenceTransformer.encode` of the same texts, same model
  object, alternating runs, median of `--repeats` (the ratio is our overhead);
- cluster: the faiss k-means stage on N synthetic 384-d unit vectors (embedding N records on 2 CPU
  cores would take hours, so clustering gets precomputed vectors, as REFERENCES.md advises).

    python benchmarks/ingest.py --records 200000 --embed-records 5000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def generate(path: Path, n: int, words: int, seed: int) -> None:
    """Records of ~`words` words drawn Zipf-like from the sample's real vocabulary, 8 domains."""
    import polars as pl

    texts = pl.read_ndjson(REPO / "data" / "papers.jsonl")["text"]
    vocab, counts = np.unique(
        texts.str.to_lowercase().str.extract_all(r"[a-z]+").explode().drop_nulls().to_numpy(), return_counts=True
    )
    p = counts / counts.sum()
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            lengths = rng.integers(words // 2, words * 3 // 2, size=m)
            idx = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
            bounds = np.concatenate(([0], np.cumsum(lengths)))
            for i in range(m):
                text = " ".join(vocab[idx[bounds[i] : bounds[i + 1]]])
                f.write(json.dumps({"id": f"r{start + i}", "text": text, "domain": f"d{(start + i) % 8}"}) + "\n")


def run_phase(args: list[str]) -> tuple[dict, float]:
    """Run a phase in a child process; (its JSON output, its own peak RSS in MB via wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"phase failed: {' '.join(args)}\n{err.read()}")
        return json.loads(out.read()), usage.ru_maxrss / 1024


def phase_embed(texts_path: Path, home: Path, repeats: int) -> dict:
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest
    from curate.stages.embed import load_model, resolve_model

    model = load_model(resolve_model("all-MiniLM-L6-v2"))
    texts = [json.loads(line)["text"] for line in texts_path.read_text().splitlines()]
    model.encode(texts[:64], batch_size=32)  # warm up
    ours, bare = [], []
    for r in range(repeats):
        start = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        bare.append(len(texts) / (time.perf_counter() - start))
        settings = Settings(home=home / f"run{r}", cache_dir_override=home / f"cache{r}")
        report = ingest(settings, texts_path, "emb", IngestParams(clusters=0))
        stage = report["stages"]["embed"]
        assert stage["encoded"] == len(texts)
        ours.append(len(texts) / stage["seconds"])
    return {
        "records": len(texts),
        "ours_records_per_s": round(statistics.median(ours), 1),
        "bare_encode_records_per_s": round(statistics.median(bare), 1),
        "ratio_ours_to_bare": round(statistics.median(ours) / statistics.median(bare), 3),
        "runs_ours": [round(x, 1) for x in ours],
        "runs_bare": [round(x, 1) for x in bare],
    }


def phase_cluster(home: Path, k: int | None) -> dict:
    from curate.config import Settings
    from curate.io import write_json
    from curate.pool import Pool
    from curate.stages.cluster import ClusterParams, ClusterStage

    pool = Pool.load(Settings(home=home), "bench")
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(64, 384)).astype(np.float32)
    vecs_dir = home / "synthetic-embeddings"
    vecs_dir.mkdir(exist_ok=True)
    x = np.lib.format.open_memmap(vecs_dir / "embeddings.npy", "w+", np.float32, (pool.n_records, 384))
    for s in range(0, pool.n_records, 50_000):
        m = min(50_000, pool.n_records - s)
        block = centers[rng.integers(0, 64, m)] + rng.normal(scale=0.7, size=(m, 384)).astype(np.float32)
        x[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    x.flush()
    write_json(vecs_dir / "stage.json", {"synthetic": True})
    out = ClusterStage(ClusterParams(k=k), vecs_dir).run(pool)
    return {key: out[key] for key in ("k", "records_per_s", "seconds", "trained_on", "mean_distance")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--embed-records", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clusters", type=int, default=None)
    ap.add_argument("--phase", choices=["embed", "cluster"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "embed":
        print(json.dumps(phase_embed(args.workdir / "embed.jsonl", args.workdir / "embed-home", args.repeats)))
        return
    if args.phase == "cluster":
        print(json.dumps(phase_cluster(args.workdir / "home", args.clusters)))
        return

    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        generate(work / "pool.jsonl", args.records, args.words, seed=0)
        gen_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "curate.cli", "ingest", str(work / "pool.jsonl"), "--pool", "bench"]
        report, ingest_rss = run_phase([*cmd, "--no-embed", "--json", "--home", str(work / "home")])
        with open(work / "pool.jsonl") as src, open(work / "embed.jsonl", "w") as dst:
            for _, line in zip(range(args.embed_records), src, strict=False):
                dst.write(line)
        me = [sys.executable, __file__, "--workdir", str(work), "--repeats", str(args.repeats)]
        embed, embed_rss = run_phase([*me, "--phase", "embed"])
        cluster_args = [*me, "--phase", "cluster"] + (["--clusters", str(args.clusters)] if args.clusters else [])
        cluster, cluster_rss = run_phase(cluster_args)
        ngrams = report["stages"]["ngrams"]
        result = {
            "benchmark": "ingest",
            "records": args.records,
            "words_per_record": args.words,
            "input_mb": round((work / "pool.jsonl").stat().st_size / 2**20, 1),
            "generate_seconds": round(gen_s, 1),
            "ingest_no_embed": {
                "peak_rss_mb": round(ingest_rss, 1),
                "read_records_per_s": report["read"]["records_per_s"],
                "ngrams_records_per_s": ngrams["records_per_s"],
                "total_seconds": report["read"]["seconds"] + ngrams["seconds"],
            },
            "embed": {**embed, "peak_rss_mb": round(embed_rss, 1)},
            "cluster": {**cluster, "records": args.records, "peak_rss_mb": round(cluster_rss, 1)},
            "machine": {"cpus": os.cpu_count()},
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
