"""Mixing sessions in-process: cluster groups (pool with its own vectors, no model) and the frozen manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from curate import mixing
from curate.ingest import IngestParams, ingest
from curate.manifest import verify
from curate.pool import Pool
from tests.conftest import write_jsonl
from tests.odm_support import synthetic_rows


def test_cluster_groups_and_frozen_manifest(settings, tmp_path):
    rng = np.random.default_rng(0)
    rows = [{**r, "vec": rng.standard_normal(8).tolist()} for r in synthetic_rows()]
    ingest(settings, write_jsonl(tmp_path / "v.jsonl", rows), "vecs", IngestParams(embedding_field="vec", clusters=8))
    pool = Pool.load(settings, "vecs")
    cluster_of = dict(zip(pool.column("id").to_list(), np.asarray(pool.clusters()).tolist(), strict=True))
    info = mixing.create_session(
        settings, pool="vecs", group_by="cluster", params={"warmup_steps": 1, "micro_batches": 2}, seed=8
    )
    assert info["groups"] == [str(c) for c in range(8)]
    served = []
    for _ in range(6):
        batch = mixing.next_batch(settings, info["id"], 10, with_text=False)
        assert all(str(cluster_of[r["id"]]) == r["group"] for r in batch["records"])
        served += [r["id"] for r in batch["records"]]
        losses = {m["group"]: 1.0 + int(m["group"]) for m in batch["micro_batches"]}
        mixing.feedback(settings, info["id"], batch["step"], losses)
    doc = mixing.freeze(settings, info["id"])
    assert verify(Path(doc["path"])) == []
    subset = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    assert subset["id"].to_list() == list(dict.fromkeys(served))
    assert subset["cluster"].to_list() == [cluster_of[i] for i in subset["id"].to_list()]
    assert set(doc["mixture"]) == set(info["groups"]) and abs(sum(doc["mixture"].values()) - 1) < 1e-12
    assert doc["metrics"]["weight_schedule"]["steps"] == list(range(1, 7))
    assert doc["lineage"]["mixing_session"] == info["id"]
    assert mixing.freeze(settings, info["id"])["id"] == doc["id"]  # frozen twice: same manifest
