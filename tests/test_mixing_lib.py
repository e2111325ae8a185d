"""Mixing sessions in-process: cluster groups (pool with its own vectors, no model) and the frozen manifest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import mixing
from curate.errors import ConflictError
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


def test_a_step_whose_worker_died_is_skipped_after_the_timeout(settings, tmp_path):
    """Worker A takes step 1 and dies; worker B's step 2 waits while step 1 is young, then goes on.
    A late report of step 1 is answered as expired and changes nothing; without a timeout B waits."""
    ingest(settings, write_jsonl(tmp_path / "s.jsonl", synthetic_rows()), "synth", IngestParams(embed=False))
    for timeout in (1.0, None):
        sid = mixing.create_session(
            settings, pool="synth", params={"warmup_steps": 0, "step_timeout_s": timeout}, seed=1
        )["id"]
        lost, live = (mixing.next_batch(settings, sid, 4, with_text=False) for _ in range(2))
        report = {m["group"]: 1.0 for m in live["micro_batches"]}
        with pytest.raises(ConflictError, match="expected feedback for step 1"):
            mixing.feedback(settings, sid, 2, report)
        time.sleep(2.1)  # issue times are stored to the second
        if timeout is None:
            with pytest.raises(ConflictError, match="expected feedback for step 1"):
                mixing.feedback(settings, sid, 2, report)
            continue
        done = mixing.feedback(settings, sid, 2, report)
        assert done["updated"] and not done["expired"] and done["expected_step"] == 3
        late = mixing.feedback(settings, sid, 1, {m["group"]: 9.0 for m in lost["micro_batches"]})
        assert late["expired"] and not late["updated"] and late["expected_step"] == 3
        state = mixing.get_session(settings, sid)
        assert state["updates"] == 1 and state["applied_step"] == 2
        assert [(h["step"], h["expired"], h["losses"]) for h in state["history"]] == [
            (1, True, None),
            (2, False, report),
        ]
        assert state["weights"] == done["weights"]
