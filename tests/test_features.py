"""Embeddings (real model, offline) with the text-hash cache, and faiss clusters."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.stages.embed import EmbedParams, encode, load_model, resolve_model

from .conftest import PAPERS


def test_embeddings_are_the_models_normalised_vectors(papers_settings: Settings) -> None:
    pool = Pool.load(papers_settings, "papers")
    x = pool.embeddings()
    assert x.shape == (427, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    texts = pool.column("text").to_list()[:5]
    model = load_model(resolve_model("all-MiniLM-L6-v2"))
    direct = model.encode(texts, normalize_embeddings=True)
    assert np.allclose(x[:5], direct, atol=1e-5)


def test_cache_hit_skips_encoding(papers_settings: Settings, tmp_path: Path) -> None:
    # Same texts under another pool name and another id mapping: everything comes from the cache.
    rows = [json.loads(line) for line in PAPERS.read_text().splitlines()]
    path = tmp_path / "renamed.jsonl"
    path.write_text("".join(json.dumps({"uid": r["id"], "text": r["text"]}) + "\n" for r in rows[:60]))
    report = ingest(papers_settings, path, "renamed", IngestParams(id_field="uid", clusters=0))
    embed = report["stages"]["embed"]
    assert embed["cached"] is False  # a new pool fingerprint, so a new artifact ...
    assert embed["encoded"] == 0 and embed["cache_hits"] == 60  # ... but no text encoded
    papers = Pool.load(papers_settings, "papers").embeddings()
    assert np.array_equal(Pool.load(papers_settings, "renamed").embeddings(), papers[:60])


def test_partial_overlap_encodes_only_new_texts(settings: Settings, tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text("".join(json.dumps({"text": f"sentence about topic {i}"}) + "\n" for i in range(20)))
    ingest(settings, first, "a", IngestParams(clusters=0))
    second = tmp_path / "b.jsonl"
    second.write_text("".join(json.dumps({"text": f"sentence about topic {i}"}) + "\n" for i in range(10, 35)))
    report = ingest(settings, second, "b", IngestParams(clusters=0))
    assert report["stages"]["embed"]["encoded"] == 15
    assert report["stages"]["embed"]["cache_hits"] == 10
    b = Pool.load(settings, "b").embeddings()
    expected = encode([f"sentence about topic {i}" for i in range(10, 35)], EmbedParams())
    assert np.allclose(b, expected, atol=1e-5)


def test_bring_your_own_vectors(settings: Settings, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 8))
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "vec": v.tolist()}) + "\n" for i, v in enumerate(vecs)))
    ingest(settings, path, "v", IngestParams(embedding_field="vec", clusters=3, chunk_bytes=1024))
    x = Pool.load(settings, "v").embeddings()
    assert np.allclose(x, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), atol=1e-6)
    assert "vec" not in (Pool.load(settings, "v").column("meta").to_list()[0] or "")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "vec": [1, 2]}\n{"text": "b", "vec": [1, 2, 3]}\n')
    from curate.errors import InputError

    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'vec': vector has 3 numbers, expected 2"):
        ingest(settings, bad, "bad", IngestParams(embedding_field="vec"))


def test_clusters_assign_each_record_to_its_nearest_centroid(papers_settings: Settings) -> None:
    pool = Pool.load(papers_settings, "papers")
    assign = np.asarray(pool.clusters())
    dist = np.asarray(pool.cluster_distance())
    info = json.loads((pool.feature_path("cluster") / "stage.json").read_text())
    centroids = np.load(pool.feature_path("cluster") / "centroids.npy")
    assert info["k"] == 8 and centroids.shape == (8, 384)
    sims = np.asarray(pool.embeddings()) @ centroids.T
    assert np.array_equal(assign, sims.argmax(axis=1))
    assert np.allclose(dist, 1 - sims.max(axis=1), atol=1e-5)
    # clusters carry topic signal: purity well above the largest topic's share
    topics = pool.column("domain").to_numpy()
    purity = sum(np.unique(topics[assign == c], return_counts=True)[1].max() for c in np.unique(assign)) / len(assign)
    assert purity > 0.4


def test_clusters_are_seeded_and_auto_k_is_sqrt_n(settings: Settings, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(4, 16)) * 5
    vecs = np.concatenate([c + rng.normal(size=(100, 16)) for c in centers])
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "v": v.tolist()}) + "\n" for i, v in enumerate(vecs)))
    a = ingest(settings, path, "a", IngestParams(embedding_field="v", seed=3))
    assert a["stages"]["cluster"]["k"] == round(math.sqrt(400))
    other = Settings(home=tmp_path / "other")
    ingest(other, path, "a", IngestParams(embedding_field="v", seed=3))
    assert np.array_equal(Pool.load(settings, "a").clusters(), Pool.load(other, "a").clusters())


def test_feature_pointers_survive_concurrent_writers(settings: Settings, tmp_path: Path) -> None:
    """Two jobs holding the same pool (stale copies of pool.json) each record a feature: both stay."""
    from concurrent.futures import ThreadPoolExecutor

    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "alpha"}\n{"text": "beta"}\n')
    ingest(settings, src, "shared", IngestParams(embed=False))
    first, second = Pool.load(settings, "shared"), Pool.load(settings, "shared")
    first.set_feature("embed", tmp_path / "e1")
    second.set_feature("cluster", tmp_path / "c1")  # `second` never saw the embed pointer
    features = json.loads((first.dir / "pool.json").read_text())["features"]
    assert features["embed"] == "e1" and features["cluster"] == "c1" and "ngrams" in features

    def writer(prefix: str) -> None:
        pool = Pool.load(settings, "shared")
        for i in range(30):
            pool.set_feature(f"{prefix}{i}", tmp_path / f"{prefix}{i}")

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(writer, ["x", "y"]))
    features = json.loads((first.dir / "pool.json").read_text())["features"]
    assert {f"{p}{i}" for p in "xy" for i in range(30)} <= set(features)
