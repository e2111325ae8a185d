"""Exact and MinHash dedup: band shape as datasketch's, Jaccard estimates within their error, planted
near-copies found, and manifests that name, for every removed id, the id it duplicated."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.dedup import ExactDedupParams, MinHashParams, dedup_pool, read_removed
from curate.dedup.minhash import agreement, hash_functions, lsh_shape, shingles, signatures
from curate.ingest import IngestParams, ingest
from curate.manifest import verify
from curate.pool import Pool
from tests.conftest import write_jsonl

DATA = Path(__file__).resolve().parents[1] / "data" / "pipeline"


def real_texts() -> list[str]:
    libs = pl.read_ndjson(DATA / "debian-libs.jsonl").filter(~pl.col("package").str.starts_with("planted"))
    apps = pl.read_csv(DATA / "debian-apps.csv").filter(~pl.col("name").str.starts_with("planted"))
    return libs["description"].to_list() + apps["about"].to_list()


def ref_shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = [w for w in re.split(r"[\s!-/:-@\[-`{-~]+", text.lower()) if w]
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.5, 128), (0.7, 128), (0.8, 256), (0.9, 64)])
def test_band_shape_is_datasketchs_optimum(threshold, num_perm):
    from datasketch.lsh import _optimal_param

    assert lsh_shape(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_signature_agreement_estimates_jaccard():
    texts = real_texts()[:200]
    rng = np.random.default_rng(0)
    variants = []  # each text against a copy with a share of its words replaced: Jaccard from 0 to 1
    for t in texts:
        words = t.split()
        drop = rng.random(len(words)) < rng.random()
        variants.append(" ".join(f"w{i}x" if d else w for i, (w, d) in enumerate(zip(words, drop, strict=True))))
    both = pl.Series(texts + variants)
    a, b = hash_functions(256, 3)
    h, rec = shingles(both, 3)
    sig = signatures(h, rec, len(both), a, b)
    n = len(texts)
    est = agreement(sig, np.arange(n), np.arange(n) + n)
    true = np.array([jaccard(ref_shingles(x), ref_shingles(y)) for x, y in zip(texts, variants, strict=True)])
    assert true.std() > 0.2  # a spread of similarities, not only near-copies
    err = est - true
    assert abs(err.mean()) < 0.02  # unbiased
    assert np.sqrt((err**2).mean()) < 1.5 * np.sqrt((true * (1 - true)).mean() / 256)  # the MinHash variance


def test_shingles_are_the_reference_sets():
    texts = real_texts()[:100] + ["", "Two words", "a,b;c d"]
    h, rec = shingles(pl.Series(texts), 3)
    for i, t in enumerate(texts):
        assert len(np.unique(h[rec == i])) == len(ref_shingles(t)), t


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Real descriptions plus near-copies (1-2 words changed) and exact copies with other spacing/case."""
    from curate.config import Settings

    texts = real_texts()[:300]
    rng = np.random.default_rng(1)
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    for i in range(0, 60):
        words = texts[i].split()
        for _ in range(1 + i % 2):
            words[int(rng.integers(len(words)))] = "zzzq"
        rows.append({"id": f"near{i}", "text": " ".join(words)})
    for i in range(60, 70):
        rows.append({"id": f"exact{i}", "text": "  " + texts[i].upper().replace(" ", "   ") + " "})
    tmp = tmp_path_factory.mktemp("dedup-methods")
    settings = Settings(home=tmp / "home")
    ingest(settings, write_jsonl(tmp / "planted.jsonl", rows), "planted", IngestParams(embed=False))
    return settings, {r["id"]: r["text"] for r in rows}


def test_minhash_finds_planted_near_copies(planted):
    settings, texts = planted
    pool = Pool.load(settings, "planted")
    params = MinHashParams(threshold=0.7)
    doc, dups = dedup_pool(settings, pool, params)
    assert verify(Path(doc["path"])) == []
    removed = read_removed(doc)
    pairs = dict(zip(removed["id"], removed["duplicate_of"], strict=True))
    kept = set(pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"])
    assert set(pairs.values()) <= kept and not set(pairs) & kept  # each removed id points at a kept one
    sims = np.array([jaccard(ref_shingles(texts[f"r{i}"]), ref_shingles(texts[f"near{i}"])) for i in range(60)])
    found = np.array([pairs.get(f"near{i}") == f"r{i}" for i in range(60)])
    bands, rows = params.band_shape()
    p_candidate = 1 - (1 - sims**rows) ** bands  # LSH's S-curve: the chance a pair shares a band
    high = sims >= 0.85
    assert high.sum() >= 10 and found[high].mean() >= 0.9
    mid = sims >= params.threshold  # found about as often as the S-curve says (verification loses a few)
    expected, sd = p_candidate[mid].sum(), np.sqrt((p_candidate[mid] * (1 - p_candidate[mid])).sum())
    assert found[mid].sum() >= expected - 3 * sd - 2
    assert all(pairs.get(f"exact{i}") == f"r{i}" for i in range(60, 70))  # same shingles after lowercasing
    for rid, other in pairs.items():  # nothing removed that is far from what it duplicated
        assert jaccard(ref_shingles(texts[rid]), ref_shingles(texts[other])) > 0.4, (rid, other)
    sim = removed.filter(pl.col("id").str.starts_with("near"))["similarity"]
    assert sim.min() >= params.threshold  # verified pairs: the signature estimate passed the threshold
    assert doc["metrics"]["removed"] == removed.height == int((dups.duplicate_of >= 0).sum())


def test_exact_dedup_normalisation(planted):
    settings, _ = planted
    pool = Pool.load(settings, "planted")
    strict, _ = dedup_pool(settings, pool, ExactDedupParams(normalize="none"))
    assert strict["metrics"]["removed"] == 0  # the copies differ in case and spacing
    folded, _ = dedup_pool(settings, pool, ExactDedupParams(normalize="lower_whitespace"))
    removed = read_removed(folded)
    assert dict(zip(removed["id"], removed["duplicate_of"], strict=True)) == {
        f"exact{i}": f"r{i}" for i in range(60, 70)
    }
    assert removed["similarity"].to_list() == [1.0] * 10


def test_cli_dedup_takes_every_method(planted):
    """`curate dedup --method minhash|exact --param k=v` gives the library's manifest; a semantic
    option on another method, or a bad parameter, exits 2 naming the field."""
    import json

    from tests.conftest import run_cli

    settings, _ = planted
    proc = run_cli("dedup", "--pool", "planted", "--method", "minhash", "--param", "threshold=0.7", "--json",
                   home=settings.home, check=True)  # fmt: skip
    doc = json.loads(proc.stdout)
    lib, _ = dedup_pool(settings, Pool.load(settings, "planted"), MinHashParams(threshold=0.7))
    assert doc["id"] == lib["id"] and doc["selector"]["name"] == "minhash"
    proc = run_cli("dedup", "--pool", "planted", "--method", "exact", "--json", home=settings.home, check=True)
    assert json.loads(proc.stdout)["metrics"]["removed"] == 10
    for args, field in [(("--method", "exact", "--eps", "0.1"), "eps"), (("--param", "threshold=2"), "threshold")]:
        method = () if "--method" in args else ("--method", "minhash")
        proc = run_cli("dedup", "--pool", "planted", *method, *args, "--json", home=settings.home)
        assert proc.returncode == 2, proc.stderr
        assert field in proc.stdout + proc.stderr
