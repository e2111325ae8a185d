"""DSIR end to end, ours vs the `data-selection` package on the same generated JSONL, one JSON object out.

Timed for both: featurise + fit + score + top-k (the package also writes its selected lines; ours
writes a manifest). Ours is timed twice: the n-gram stage + the selection (what DSIR costs on a pool),
and the whole ingest + selection from the same JSONL (what a first-time user waits for). Quality: the
KL reduction of both selections in one shared feature space (our pool's n-grams, add-one smoothing),
random's beside them, and the precision on the target's domain.

    python benchmarks/dsir.py --records 200000 --num-proc 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def generate(path: Path, n: int, seed: int, domains: int = 8, words: int = 40, start_id: int = 0) -> np.ndarray:
    """Records whose words are Zipf over the sample abstracts' vocabulary; 30 % of each domain's tokens
    come from a domain-specific re-ranking of it, so domains overlap but are separable."""
    texts = pl.read_ndjson(REPO / "data" / "papers.jsonl")["text"]
    vocab = texts.str.to_lowercase().str.extract_all(r"[a-z]+").explode().drop_nulls().value_counts(sort=True)
    vocab = np.asarray(vocab[:, 0].to_list())
    v = len(vocab)
    rng = np.random.default_rng(seed)
    dom = rng.integers(0, domains, n)
    lengths = rng.integers(words // 2, words * 3 // 2, n)
    rank = np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, v - 1)
    token_dom = np.repeat(dom, lengths)
    special = rng.random(len(rank)) < 0.3
    ids = np.where(special, (rank * 7919 + token_dom * 104_729 + 13) % v, rank)
    frame = pl.DataFrame({"doc": np.repeat(np.arange(n), lengths), "w": vocab[ids]})
    text = frame.group_by("doc", maintain_order=True).agg(pl.col("w").str.join(" "))["w"]
    pl.DataFrame(
        {"id": [f"r{start_id + i}" for i in range(n)], "text": text, "domain": [f"d{d}" for d in dom]}
    ).write_ndjson(path)
    return dom


def run_reference(raw: Path, target: Path, cache: Path, k: int, num_proc: int) -> tuple[float, list[str]]:
    from data_selection import HashedNgramDSIR

    start = time.perf_counter()
    dsir = HashedNgramDSIR([str(raw)], [str(target)], str(cache / "cache"), num_proc=num_proc, min_example_length=0)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    np.random.seed(0)  # the package draws its Gumbel noise from the global RNG
    dsir.resample(out_dir=str(cache / "out"), num_to_sample=k, cache_dir=str(cache / "resample"))
    seconds = time.perf_counter() - start
    ids = pl.concat([pl.read_ndjson(p) for p in sorted((cache / "out").glob("*.jsonl"))])["id"].to_list()
    return seconds, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--target-records", type=int, default=2_000)
    ap.add_argument("--fraction", type=float, default=0.1, help="Budget as a fraction of the pool.")
    ap.add_argument("--num-proc", type=int, default=2, help="Worker processes of the reference package.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from curate.config import Settings
    from curate.ingest import IngestParams, ingest
    from curate.metrics import kl_reduction, selected_totals
    from curate.pool import Pool
    from curate.select import run_selection
    from curate.stages.ngrams import featurize

    tmp = Path(tempfile.mkdtemp(prefix="bench-dsir-"))
    raw, target = tmp / "raw.jsonl", tmp / "target.jsonl"
    generate(raw, args.records, args.seed)
    tdom = generate(tmp / "tall.jsonl", args.target_records * 8, args.seed + 1, start_id=10**9)
    tall = pl.read_ndjson(tmp / "tall.jsonl")
    tall.filter(pl.Series(tdom == 0)).head(args.target_records).write_ndjson(target)
    k = int(args.fraction * args.records)

    ref_seconds, ref_ids = run_reference(raw, target, tmp, k, args.num_proc)

    settings = Settings(home=tmp / "home")
    start = time.perf_counter()
    report = ingest(settings, raw, "bench", IngestParams(embed=False, id_field="id", domain_field="domain"))
    ingest_seconds = time.perf_counter() - start
    start = time.perf_counter()
    doc = run_selection(settings, pool="bench", selector="dsir", budget=k, target=str(target), seed=args.seed)
    select_seconds = time.perf_counter() - start
    ngram_seconds = report["stages"]["ngrams"]["seconds"]

    pool = Pool.load(settings, "bench")
    feats = pool.ngrams()
    ids = pool.column("id")
    row_of = dict(zip(ids.to_list(), range(len(ids)), strict=True))
    ours_rows = np.sort(pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"].replace_strict(row_of).to_numpy())
    ref_rows = np.sort(np.array([row_of[i] for i in ref_ids]))
    rand_rows = np.sort(np.random.default_rng(args.seed).choice(args.records, k, replace=False))
    tgt = np.asarray(featurize(pl.read_ndjson(target)["text"], feats.params)[0].sum(axis=0), np.float64).ravel()
    raw_totals = feats.totals()
    sel = selected_totals(feats, [ours_rows, ref_rows, rand_rows])
    klr = [kl_reduction(tgt, raw_totals, s) for s in sel]
    domain = pool.column("domain").to_numpy()

    def precision(rows: np.ndarray) -> float:
        return round(float(np.mean(domain[rows] == "d0")), 4)

    ours_dsir = ngram_seconds + select_seconds
    out = {
        "benchmark": "dsir",
        "records": args.records,
        "target_records": args.target_records,
        "selected": k,
        "reference": {"package": "data-selection 1.0.3", "num_proc": args.num_proc, "seconds": round(ref_seconds, 3)},
        "ours": {
            "ngram_stage_seconds": ngram_seconds,
            "select_seconds": round(select_seconds, 3),
            "ingest_seconds": round(ingest_seconds, 3),
        },
        "records_per_s": {
            "reference": round(args.records / ref_seconds, 1),
            "ours_dsir": round(args.records / ours_dsir, 1),
            "ours_ingest_and_dsir": round(args.records / (ingest_seconds + select_seconds), 1),
        },
        "speedup_dsir": round(ref_seconds / ours_dsir, 2),
        "speedup_ingest_and_dsir": round(ref_seconds / (ingest_seconds + select_seconds), 2),
        "kl_reduction": {"ours": round(klr[0], 5), "reference": round(klr[1], 5), "random": round(klr[2], 5)},
        "kl_reduction_ratio_ours_over_reference": round(klr[0] / klr[1], 4) if klr[1] else None,
        "kl_space": "our fast-hash 10k buckets, unigrams+bigrams, add-one on raw and selected",
        "target_domain_precision": {"ours": precision(ours_rows), "reference": precision(ref_rows), "random": 0.125},
        "ours_params": doc["selector"]["params"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
