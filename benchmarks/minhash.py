"""MinHash fuzzy dedup, curate vs datasketch on the same 200k records: time and recall of planted
near-duplicates, with the same num_perm, threshold and LSH bands × rows.

    nice -n 10 .venv/bin/python benchmarks/minhash.py [--records 200000] [--planted 20000] [--repeats 3]

Records: real Debian package descriptions and docstrings (tests/realtext.py), topped up with
"mosaics" (three sentences of three random real records) to reach the size, then near-copies of
random records (1-3 word edits, case/punctuation noise) appended. Truth is the exact Jaccard of
each copy's word 3-gram set with its original's. Both tools see the same shingles' text; datasketch
runs its fastest documented path (``MinHash.bulk``, then ``MinHashLSH`` query-then-insert in pool
order). Prints one JSON object; recall is per Jaccard bin, time is the median of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.dedup.minhash import (  # noqa: E402
    MinHashParams,
    agreement,
    band_keys,
    candidate_pairs,
    clusters,
    hash_functions,
    shingles,
    signatures,
)

UNIT = 20_000
SPLIT = re.compile(r"[\s!-/:-@\[-`{-~]+")  # what curate treats as separators (ASCII space and punctuation)


def words_of(text: str) -> list[str]:
    return [w for w in SPLIT.split(text.lower()) if w]


def shingle_set(text: str, n: int = 3) -> list[str]:
    w = words_of(text)
    if len(w) < n:
        return [" ".join(w)] if w else []
    return [" ".join(w[i : i + n]) for i in range(len(w) - n + 1)]


def build(n: int, planted: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(texts, original index of each planted copy); copies are the last ``planted`` texts."""
    from tests.realtext import corpus

    rng = np.random.default_rng(seed)
    real = pl.concat([corpus("debian", n_domains=60)["text"], corpus("docstrings", n_domains=16)["text"]]).to_list()
    base = list(real[: n - planted])
    sentences = [s for t in real for s in re.split(r"(?<=\.) ", t) if len(s.split()) >= 4]
    while len(base) < n - planted:
        pick = rng.integers(len(sentences), size=3)
        base.append(" ".join(sentences[i] for i in pick))
    originals = rng.integers(len(base), size=planted)
    vocab = [w for t in real[:2000] for w in t.split()]
    copies = []
    for i in originals:
        words = base[i].split()
        for _ in range(int(rng.integers(1, 4))):
            op, at = rng.integers(3), int(rng.integers(len(words)))
            if op == 0:
                words[at] = vocab[int(rng.integers(len(vocab)))]
            elif op == 1 and len(words) > 3:
                del words[at]
            else:
                words.insert(at, vocab[int(rng.integers(len(vocab)))])
        text = " ".join(words)
        copies.append(text.upper() if rng.random() < 0.2 else text.replace(",", ""))
    return base + copies, originals


def run_curate(texts: pl.Series, params: MinHashParams) -> tuple[np.ndarray, dict]:
    """curate's MinHash stage minus its file I/O: units of 20k rows, LSH on the whole pool."""
    t0 = time.perf_counter()
    a, b = hash_functions(params.num_perm, params.seed)
    bands, rows = params.band_shape()
    sigs, keys = [], []
    for start in range(0, len(texts), UNIT):
        unit = texts.slice(start, UNIT)
        h, rec = shingles(unit, params.ngram)
        s = signatures(h, rec, len(unit), a, b)
        sigs.append(s)
        keys.append(band_keys(s, bands, rows))
    sig, key = np.concatenate(sigs), np.concatenate(keys)
    t1 = time.perf_counter()
    i, j = candidate_pairs(key, sig[:, 0] == np.uint32(0xFFFFFFFF))
    est = agreement(sig, i, j)
    keep = est >= params.threshold if params.verify else np.ones(len(i), bool)
    owner = clusters(len(texts), i[keep], j[keep])
    t2 = time.perf_counter()
    return owner, {"signatures_s": round(t1 - t0, 3), "lsh_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3)}


def run_datasketch(texts: list[str], params: MinHashParams) -> tuple[np.ndarray, dict]:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    sets = [[s.encode("utf-8") for s in shingle_set(t, params.ngram)] for t in texts]
    t1 = time.perf_counter()
    hashes = MinHash.bulk(sets, num_perm=params.num_perm, seed=params.seed)
    t2 = time.perf_counter()
    lsh = MinHashLSH(threshold=params.threshold, num_perm=params.num_perm, params=params.band_shape())
    owner = np.full(len(texts), -1, np.int64)
    for k, m in enumerate(hashes):
        if not sets[k]:
            continue
        found = lsh.query(m)
        if found:
            owner[k] = min(found)
        else:
            lsh.insert(k, m)
    t3 = time.perf_counter()
    return owner, {"shingles_s": round(t1 - t0, 3), "bulk_minhash_s": round(t2 - t1, 3), "lsh_s": round(t3 - t2, 3),
                   "total_s": round(t3 - t0, 3), "total_without_shingles_s": round(t3 - t1, 3)}  # fmt: skip


def evaluate(owner: np.ndarray, texts: list[str], originals: np.ndarray, truth: np.ndarray, rng) -> dict:
    n_base = len(texts) - len(originals)
    copies = np.arange(n_base, len(texts))
    found = owner[copies] >= 0
    out = {"removed": int((owner >= 0).sum())}
    for lo, hi in ((0.9, 1.01), (0.8, 0.9), (0.7, 0.8), (0.5, 0.7)):
        sel = (truth >= lo) & (truth < hi)
        out[f"recall_jaccard_{lo}-{min(hi, 1.0)}"] = round(float(found[sel].mean()), 4) if sel.any() else None
    sel = truth >= 0.7
    out["recall_jaccard_ge_0.7"] = round(float(found[sel].mean()), 4)
    gone = np.flatnonzero(owner >= 0)
    sample = rng.choice(gone, size=min(3000, len(gone)), replace=False)
    sims = [jaccard(texts[k], texts[owner[k]]) for k in sample]
    out["removed_with_jaccard_lt_0.5"] = round(float(np.mean(np.array(sims) < 0.5)), 4)  # a false-positive rate
    return out


def jaccard(x: str, y: str) -> float:
    a, b = set(shingle_set(x)), set(shingle_set(y))
    return len(a & b) / len(a | b) if a | b else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--planted", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=0.7)
    args = ap.parse_args()
    load_before = os.getloadavg()
    texts, originals = build(args.records, args.planted)
    n_base = len(texts) - len(originals)
    truth = np.array([jaccard(texts[n_base + k], texts[o]) for k, o in enumerate(originals)])
    series = pl.Series(texts)
    rng = np.random.default_rng(1)
    out = {"records": len(texts), "planted": len(originals), "planted_jaccard_mean": round(float(truth.mean()), 3)}
    for verify in (True, False):
        params = MinHashParams(threshold=args.threshold, verify=verify)
        runs = [run_curate(series, params) for _ in range(args.repeats)]
        owner, _ = runs[0]
        timing = {k: float(np.median([r[1][k] for r in runs])) for k in runs[0][1]}
        out[f"curate_verify_{verify}"] = {**timing, **evaluate(owner, texts, originals, truth, rng)}
    params = MinHashParams(threshold=args.threshold)
    out["params"] = {"num_perm": params.num_perm, "threshold": params.threshold, "ngram": params.ngram,
                     "bands_rows": list(params.band_shape())}  # fmt: skip
    runs = [run_datasketch(texts, params) for _ in range(args.repeats)]
    timing = {k: float(np.median([r[1][k] for r in runs])) for k in runs[0][1]}
    out["datasketch"] = {**timing, **evaluate(runs[0][0], texts, originals, truth, rng)}
    ours = out["curate_verify_False"]["total_s"]
    out["speedup_vs_datasketch"] = round(out["datasketch"]["total_s"] / ours, 2)
    out["speedup_vs_datasketch_without_its_shingling"] = round(out["datasketch"]["total_without_shingles_s"] / ours, 2)
    out["speedup_verified_vs_datasketch"] = round(
        out["datasketch"]["total_s"] / out["curate_verify_True"]["total_s"], 2
    )
    out["load_average_before"] = [round(x, 2) for x in load_before]
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
