"""DSIR on real short text (issue 12): ours vs the `data-selection` package on one split, one metric.

Shared by tests/test_quality_real.py and benchmarks/quality.py. Per seed, a Debian-descriptions
pool (``per_domain`` records of each of ``n_domains`` sections) and, for each target, a fit part
(what both selectors see) and a held-out part, both kept out of the pool. Both selectors draw the
same budget from the same JSONL; random beside them.

The metric is the paper's KL reduction (ALGORITHMS.md §1.7), measured where neither selector
fitted anything: a *neutral* hashed feature space — the same tokens and 1..2-grams as DSIR, but
hashed by keyed blake2b into ``NEUTRAL_BUCKETS`` buckets, so no selector's own hash collisions
count in its favour — against the *held-out* target texts. Measured in a selector's own bucket
space, each one wins at home (ours/reference 0.89-1.07 in the package's sha256 buckets, 1.03-2.06
in ours); the neutral space is the fair judge. Both home-space figures are reported as well.
Also: precision (share of the selection in the target's sections) and mean tokens per record.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from curate.metrics import kl_reduction

NEUTRAL_BUCKETS = 10_000
_KEY = b"curate-neutral-kl"  # any key other than the selectors' hashes: an independent bucket map
_TOKEN = re.compile(r"\w+|[^\w\s]+")


@dataclass(frozen=True)
class Target:
    name: str
    shares: dict[str, float]


TARGETS = (  # one clean section, one that overlaps its neighbours, and a three-way mix
    Target("haskell", {"haskell": 1.0}),
    Target("python", {"python": 1.0}),
    Target("mix_libs_utils_doc", {"libs": 1 / 3, "utils": 1 / 3, "doc": 1 / 3}),
)


def neutral_counts(texts: list[str], buckets: int = NEUTRAL_BUCKETS) -> sp.csr_matrix:
    """Per text, counts of its lowercased wordpunct 1- and 2-grams in keyed-blake2b buckets."""
    bucket_of: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        toks = _TOKEN.findall(text.lower())
        for gram in toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]:
            b = bucket_of.get(gram)
            if b is None:
                digest = hashlib.blake2b(gram.encode(), key=_KEY, digest_size=8).digest()
                b = bucket_of[gram] = int.from_bytes(digest, "little") % buckets
            rows.append(i)
            cols.append(b)
    data = np.ones(len(rows), np.float64)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(texts), buckets))


@dataclass
class Split:
    home: Path
    pool: pl.DataFrame  # id, text, domain, in pool file order
    fit: dict[str, pl.DataFrame]
    held: dict[str, pl.DataFrame]
    cache: dict = field(default_factory=dict)  # feature space → pool counts, shared by every target's Scorer


def build_split(home: Path, seed: int, targets=TARGETS, per_domain: int = 400, n_fit: int = 100, n_held: int = 200,
                n_domains: int = 12) -> Split:  # fmt: skip
    """The pool and each target's fit/held parts, from one seeded sample of the corpus."""
    from tests.realtext import corpus, hold_out

    reserve: dict[str, int] = {}
    for t in targets:
        for d, s in t.shares.items():
            reserve[d] = max(reserve.get(d, 0), int(np.ceil(s * (n_fit + n_held))))
    df = corpus("debian", n_domains=n_domains, per_domain=per_domain + max(reserve.values()), seed=seed)
    pool, spare = hold_out(df, reserve, per_domain, seed)
    fit, held = {}, {}
    for t in targets:
        f, h = [], []
        for d, s in t.shares.items():
            rows = spare.filter(pl.col("domain") == d)
            nf, nh = round(s * n_fit), round(s * n_held)
            f.append(rows.head(nf))
            h.append(rows.slice(nf, nh))
        fit[t.name], held[t.name] = pl.concat(f), pl.concat(h)
    home.mkdir(parents=True, exist_ok=True)
    return Split(home, pool, fit, held)


def run_ours(split: Split, target: Target, budget: int, seed: int, params: dict | None = None) -> np.ndarray:
    """Pool row positions chosen by curate's dsir through ``run_selection`` (a user's path)."""
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest
    from curate.select import run_selection

    settings = Settings(home=split.home / "home")
    pool_path, tgt_path = split.home / "pool.jsonl", split.home / f"{target.name}-fit.jsonl"
    if not pool_path.exists():
        split.pool.write_ndjson(pool_path)
        ingest(settings, pool_path, "pool", IngestParams(embed=False, clusters=0))
    if not tgt_path.exists():
        split.fit[target.name].write_ndjson(tgt_path)
    doc = run_selection(settings, pool="pool", selector="dsir", budget=budget, seed=seed, target=str(tgt_path),
                        params=params)  # fmt: skip
    ids = pl.read_parquet(f"{doc['path']}/subset.parquet")["id"]
    return _positions(split, ids.to_list())


def run_reference(split: Split, target: Target, budget: int, seed: int) -> np.ndarray:
    """The `data-selection` package with its defaults, except min_example_length=0 (its 100-token
    default would drop every record of a short-text pool)."""
    from data_selection import HashedNgramDSIR

    with tempfile.TemporaryDirectory(dir=split.home) as tmp:
        tmp = Path(tmp)
        raw, tgt = tmp / "raw.jsonl", tmp / "target.jsonl"
        split.pool.select("id", "text").write_ndjson(raw)
        split.fit[target.name].select("id", "text").write_ndjson(tgt)
        dsir = HashedNgramDSIR([str(raw)], [str(tgt)], str(tmp / "cache"), num_proc=1, min_example_length=0)
        dsir.fit_importance_estimator(num_tokens_to_fit="auto")
        dsir.compute_importance_weights()
        np.random.seed(seed)  # the package draws its Gumbel noise from numpy's global RNG
        dsir.resample(out_dir=str(tmp / "out"), num_to_sample=budget, cache_dir=str(tmp / "resample"))
        ids = pl.concat([pl.read_ndjson(p) for p in sorted((tmp / "out").glob("*.jsonl"))])["id"]
    return _positions(split, ids.to_list())


def _positions(split: Split, ids: list[str]) -> np.ndarray:
    pos = dict(zip(split.pool["id"].to_list(), range(split.pool.height), strict=True))
    return np.sort(np.asarray([pos[i] for i in ids], np.int64))


class Scorer:
    """KL reduction toward one target's held-out texts in the neutral space (and in the two home
    spaces toward the fit texts), precision and length, for any set of pool rows."""

    def __init__(self, split: Split, target: Target):
        from curate.stages.ngrams import NgramParams, featurize

        self.split, self.target = split, target
        texts = split.pool["text"]
        self.domains = split.pool["domain"].to_numpy()
        if not split.cache:
            split.cache["neutral"] = neutral_counts(texts.to_list())
            for space in ("sha256", "fast"):
                split.cache[space] = featurize(texts, NgramParams(hash=space))[0].tocsr().astype(np.float64)
        self.counts = split.cache
        self.tgt = {"neutral": np.asarray(neutral_counts(split.held[target.name]["text"].to_list()).sum(0)).ravel()}
        fit = split.fit[target.name]["text"]
        for space in ("sha256", "fast"):
            self.tgt[space] = np.asarray(featurize(fit, NgramParams(hash=space))[0].sum(0), np.float64).ravel()
        self.raw = {s: np.asarray(c.sum(0)).ravel() for s, c in self.counts.items()}
        self.n_grams = np.asarray(self.counts["fast"].sum(1)).ravel()  # 1- + 2-gram occurrences per record

    def score(self, rows: np.ndarray) -> dict:
        out = {}
        for space, counts in self.counts.items():
            sel = np.asarray(counts[rows].sum(0)).ravel()
            out[f"kl_{space}"] = round(float(kl_reduction(self.tgt[space], self.raw[space], sel)), 5)
        out["precision"] = round(float(np.isin(self.domains[rows], list(self.target.shares)).mean()), 4)
        out["mean_ngrams"] = round(float(self.n_grams[rows].mean()), 2)
        return out


def run_methods(split: Split, target: Target, budget: int, seed: int, variants: dict[str, dict] | None = None,
                randoms: int = 3, reference: bool = True) -> dict:  # fmt: skip
    """ours (defaults; and ``variants``: name → params), the reference, and ``randoms`` random draws."""
    sc = Scorer(split, target)
    out = {"dsir": sc.score(run_ours(split, target, budget, seed))}
    for name, params in (variants or {}).items():
        out[name] = sc.score(run_ours(split, target, budget, seed, params))
    if reference:
        out["reference"] = sc.score(run_reference(split, target, budget, seed))
    rng = np.random.default_rng([seed, 0x4A4D])
    draws = [sc.score(np.sort(rng.choice(split.pool.height, budget, replace=False))) for _ in range(randoms)]
    out["random"] = {k: round(float(np.mean([d[k] for d in draws])), 5) for k in draws[0]}
    return out
