"""CCS (`coverage`) on real short text (issue 12): a Debian-descriptions pool, a held-out labelled
test set, and a logistic-regression probe trained on each coreset.

Shared by tests/test_coverage_realtext.py and benchmarks/coverage_realtext.py (and importable by
the quality harness). Per seed, ``n_test`` records of each section are held out and the pool takes
``per_domain`` of the rest; all vectors come from the real model through curate's own ingest
(embedding cache by text hash: point ``CURATE_CACHE_DIR`` at /work/cache/emb-realtext to share it),
and the pool is clustered the way a user's ingest clusters it (k = √n).

The measure, per selection: train ``LogisticRegression`` on the selected records' embeddings with
their Section labels, report accuracy on the held-out set. Random at the same budget is the bar CCS
must clear at high pruning rates (the paper's claim: importance-only selection collapses there,
CCS does not).

Two ways to select:
- :func:`run_default` goes through ``run_selection`` like a user (manifest, selector defaults);
- :func:`Scores` + :func:`ccs_rows` compute each difficulty score once per seed and draw CCS
  coresets for many (score, β) pairs from it, for sweeps; same functions the selector calls.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

N_DOMAINS = 10  # the corpus: the 10 largest Debian sections


@dataclass
class Split:
    """One seed's ingested pool and its held-out labelled test set (vectors in row_id order)."""

    settings: object
    pool: str
    x: np.ndarray  # pool embeddings
    y: np.ndarray  # pool Section labels (str)
    x_test: np.ndarray
    y_test: np.ndarray
    cache: dict = field(default_factory=dict)  # score name → score vector, filled by Scores


def _pool_arrays(settings, name: str) -> tuple[np.ndarray, np.ndarray]:
    from curate.pool import Pool

    p = Pool.load(settings, name)
    labels = p.scan().select("row_id", "domain").collect().sort("row_id")["domain"].to_numpy()
    return np.asarray(p.embeddings(), np.float32), labels


def build_split(
    home: Path,
    seed: int,
    n_domains: int = N_DOMAINS,
    per_domain: int = 600,
    n_test: int = 100,
    corpus_seed: int | None = 0,
) -> Split:
    """Sample ``per_domain + n_test`` records of each of the ``n_domains`` largest sections (with
    ``corpus_seed``; fixed by default so that every seed re-splits one set of texts, each embedded
    once), hold ``n_test`` per section out with ``seed``, ingest both parts."""
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest
    from tests.realtext import corpus

    total = per_domain + n_test
    df = corpus("debian", n_domains=n_domains, per_domain=total, seed=seed if corpus_seed is None else corpus_seed)
    rng = np.random.default_rng(seed)
    df = df.with_columns(pl.Series("_r", rng.random(df.height))).sort("_r")
    rank = pl.int_range(pl.len()).over("domain")
    test = df.filter(rank < n_test).drop("_r").sort("id")
    pool = df.filter((rank >= n_test) & (rank < total)).drop("_r").sort("id")
    settings = Settings(home=home)
    done = home / "built.txt"  # a kept home (benchmark --work) is reused: same texts, same split
    key = f"{n_domains} {per_domain} {n_test} {corpus_seed} {seed}"
    if done.exists() and done.read_text() == key:
        x, y = _pool_arrays(settings, "debian")
        return Split(settings, "debian", x, y, *_pool_arrays(settings, "test"))
    home.mkdir(parents=True, exist_ok=True)
    for name, frame, params in (
        ("debian", pool, IngestParams(embed=True)),  # default clustering: what prototypicality reads
        ("test", test, IngestParams(embed=True, clusters=0)),
    ):
        path = home / f"{name}.jsonl"
        frame.write_ndjson(path)
        ingest(settings, path, name, params)
    x, y = _pool_arrays(settings, "debian")
    x_test, y_test = _pool_arrays(settings, "test")
    done.write_text(key)
    return Split(settings, "debian", x, y, x_test, y_test)


def probe_accuracy(split: Split, rows: np.ndarray, c: float = 1.0) -> float:
    """Held-out accuracy of a logistic-regression probe trained on the selected rows."""
    from sklearn.linear_model import LogisticRegression

    rows = np.asarray(rows, np.int64)
    if len(np.unique(split.y[rows])) < 2:
        return float(np.mean(split.y_test == split.y[rows][0])) if len(rows) else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(C=c, max_iter=1000).fit(split.x[rows], split.y[rows])
    return round(float(clf.score(split.x_test, split.y_test)), 5)


def budget_of(split: Split, pruning: float) -> int:
    return int(round((1.0 - pruning) * len(split.y)))


def run_default(split: Split, selector: str, pruning: float, seed: int, params: dict | None = None) -> dict:
    """One selection through ``run_selection`` (the user's path): probe accuracy and the
    selector's own metrics (β, stratum sizes, ...)."""
    from curate.select import run_selection
    from tests.tarot_realtext import selected_rows

    doc = run_selection(
        split.settings, pool=split.pool, selector=selector, budget=budget_of(split, pruning), seed=seed, params=params
    )
    rows, _ = selected_rows(split, doc)
    metrics = {k: doc["metrics"][k] for k in ("score", "beta") if k in doc["metrics"]}
    return {"acc": probe_accuracy(split, rows), "n": int(len(rows)), **metrics}


class Scores:
    """Difficulty scores of one split, each computed once (the same functions the selector uses)."""

    def __init__(self, split: Split, seed: int):
        self.split, self.seed = split, seed

    def get(self, name: str) -> np.ndarray:
        if name not in self.split.cache:
            self.split.cache[name] = self._compute(name)
        return self.split.cache[name]

    def _compute(self, name: str) -> np.ndarray:
        from curate.pool import Pool
        from curate.selectors import coverage

        if name == "prototypicality":
            return np.asarray(Pool.load(self.split.settings, self.split.pool).cluster_distance(), np.float64)
        if name == "el2n_probe":
            d = coverage.CoverageParams()
            return coverage.el2n_probe_scores(self.split.x, self.split.y, d.probe_folds, d.probe_c, self.seed)
        raise ValueError(f"unknown score {name!r}")


def ccs_rows(scores: np.ndarray, budget: int, beta: float, seed: int, num_strata: int = 50, hard: str = "high"):
    from curate.selectors.coverage import ccs_select

    return ccs_select(scores, budget, beta, num_strata, np.random.default_rng(seed), hard).chosen


def random_rows(split: Split, budget: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(split.y), budget, replace=False)
