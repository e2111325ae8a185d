"""Quality-filter throughput on 200k real short texts (Debian descriptions + docstrings, repeated to
size), next to plain-Python implementations of the same definitions measured in the same run.

    nice -n 10 .venv/bin/python benchmarks/filters.py [--records 200000] [--repeats 3]

Prints one JSON object: records/s (wall and per CPU-second) for the rule-based families together
(length + characters + repetition, Gopher defaults) with 1 and 2 threads, each family alone, the
language filter on its own (a fastText call per text), the Python baseline's records/s on a
subsample, and the load average before and after (the machine is shared: quote the ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.filters import FilterSpec, decide, measure  # noqa: E402

UNIT = 20_000  # rows per unit, as the filter stage cuts a pool


def corpus_texts(n: int) -> pl.Series:
    from tests.realtext import corpus

    texts = pl.concat([corpus("debian", n_domains=60)["text"], corpus("docstrings", n_domains=16)["text"]])
    reps = -(-n // len(texts))
    return pl.concat([texts] * reps).head(n)


def run(spec: FilterSpec, texts: pl.Series, threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to measure and decide every unit."""
    units = [texts.slice(i, UNIT) for i in range(0, len(texts), UNIT)]

    def one(unit: pl.Series) -> int:
        values = measure(spec, unit)
        kept, _ = decide(spec, values)
        return int(kept.sum())

    wall, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        for u in units:
            one(u)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, units))
    return time.perf_counter() - wall, time.process_time() - cpu


def median_rate(spec: FilterSpec, texts: pl.Series, threads: int, repeats: int) -> dict:
    walls, cpus = zip(*(run(spec, texts, threads) for _ in range(repeats)), strict=True)
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    return {"records_per_s": round(len(texts) / wall), "records_per_cpu_s": round(len(texts) / cpu),
            "wall_s": round(wall, 3), "threads": threads}  # fmt: skip


def python_baseline(texts: pl.Series) -> dict:
    from tests.test_filters import ref_characters, ref_length, ref_repetition

    items = texts.fill_null("").to_list()
    start = time.perf_counter()
    for t in items:
        ref_length(t), ref_characters(t), ref_repetition(t)
    wall = time.perf_counter() - start
    return {"records": len(items), "records_per_s": round(len(items) / wall)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-records", type=int, default=10_000)
    args = ap.parse_args()
    load_before = os.getloadavg()
    texts = corpus_texts(args.records)
    rules = FilterSpec(length={}, characters={}, repetition={})
    measure(rules, texts.head(1000))  # warm-up
    out = {
        "records": len(texts),
        "mean_chars": round(float(texts.str.len_chars().mean()), 1),
        "cpus": os.cpu_count(),
        "rule_filters_1_thread": median_rate(rules, texts, 1, args.repeats),
        "rule_filters_2_threads": median_rate(rules, texts, 2, args.repeats),
        "per_family_1_thread": {
            name: median_rate(FilterSpec(**{name: {}}), texts, 1, 1)["records_per_s"]
            for name in ("length", "characters", "repetition")
        },
        "language_1_thread": median_rate(FilterSpec(language={}), texts.head(50_000), 1, 1),
    }
    base = python_baseline(texts.head(args.baseline_records))
    out["python_reference"] = base
    out["speedup_vs_python_2_threads"] = round(
        out["rule_filters_2_threads"]["records_per_s"] / base["records_per_s"], 1
    )
    out["load_average_before"] = [round(x, 2) for x in load_before]
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
