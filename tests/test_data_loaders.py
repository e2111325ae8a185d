"""Training-side consumption (issue 16 item 8, and item 9's download names): a static manifest's
rows with text, weight and original fields, from a local home and from a real server, as torch and
Hugging Face datasets sharded for data-parallel ranks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch.utils.data as tud

from curate.data import ManifestIterableDataset, WeightedShardSampler, hf_dataset, shard_rows, subset_file
from curate.manifest import export
from curate.select import run_selection
from tests.apiserver import LiveServer

from .conftest import PAPERS, REPO

SOURCE = {r["id"]: r for r in map(json.loads, PAPERS.read_text().splitlines())}


@pytest.fixture(scope="module")
def weighted(papers_settings) -> dict:
    """A tarot manifest: weights differ from record to record (transported target mass)."""
    target = REPO / "data" / "targets" / "multimodal.jsonl"
    return run_selection(papers_settings, pool="papers", selector="tarot", budget=80, target=str(target))


def test_export_with_text_keeps_the_original_fields(papers_settings, weighted, tmp_path):
    for fmt, read in (("jsonl", pl.read_ndjson), ("parquet", pl.read_parquet), ("csv", pl.read_csv)):
        frame = read(export(papers_settings, Path(weighted["path"]), fmt, tmp_path / f"s.{fmt}", with_text=True))
        assert frame["title"].to_list() == [SOURCE[i]["title"] for i in frame["id"].to_list()], fmt
        assert frame["text"].to_list() == [SOURCE[i]["text"] for i in frame["id"].to_list()], fmt
        assert "meta" not in frame.columns  # every field has a column of its own


def test_shards_are_disjoint_and_cover():
    for n, world, workers in ((10, 3, 1), (101, 4, 3), (2, 4, 1)):
        parts = [shard_rows(n, r, world, w, workers) for r in range(world) for w in range(workers)]
        joined = np.concatenate(parts)
        assert len(joined) == n and set(joined.tolist()) == set(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_torch_iterable_dataset_by_rank_and_worker(papers_settings, weighted):
    path = subset_file(weighted["id"][:6], home=papers_settings.root)
    subset = pl.read_parquet(path)
    assert subset["id"].to_list() == pl.read_parquet(Path(weighted["path"]) / "subset.parquet")["id"].to_list()
    seen = []
    for rank in range(2):
        ds = ManifestIterableDataset(path, rank=rank, world_size=2, weighting="loss", batch_rows=16)
        loader = tud.DataLoader(ds, batch_size=None, num_workers=2)
        rows = list(loader)
        assert {r["text"] for r in rows} <= {SOURCE[r["id"]]["text"] for r in rows}
        seen += [(r["id"], r["weight"]) for r in rows]
    assert sorted(seen) == sorted(zip(subset["id"].to_list(), subset["weight"].to_list(), strict=True))

    drawn = [r["id"] for r in ManifestIterableDataset(path, rank=1, world_size=2, weighting="sample", seed=3)]
    mine = set(subset["id"].to_list()[1::2])
    assert len(drawn) == len(mine) and set(drawn) <= mine  # a rank samples only its own rows


def test_weighted_sampler_follows_the_weights(weighted):
    w = pl.read_parquet(Path(weighted["path"]) / "subset.parquet")["weight"].to_numpy()
    assert w.std() > 0.05
    sampler = WeightedShardSampler(w, rank=0, world_size=2, num_samples=200_000, seed=1)
    counts = np.bincount(list(sampler), minlength=len(w))
    rows = shard_rows(len(w), 0, 2)
    assert counts[np.setdiff1d(np.arange(len(w)), rows)].sum() == 0
    expected = 200_000 * w[rows] / w[rows].sum()
    assert np.all(np.abs(counts[rows] - expected) < 5 * np.sqrt(expected) + 5)
    sampler.set_epoch(1)
    assert list(sampler)[:50] != list(WeightedShardSampler(w, rank=0, world_size=2, num_samples=200_000, seed=1))[:50]
    once = list(WeightedShardSampler(w, rank=1, world_size=2, replacement=False))
    assert sorted(once) == shard_rows(len(w), 1, 2).tolist()


def test_hugging_face_streaming_shards(papers_settings, weighted):
    pytest.importorskip("datasets")
    path = subset_file(weighted["id"], home=papers_settings.root)
    ids = pl.read_parquet(path)["id"].to_list()
    parts = [[r["id"] for r in hf_dataset(path, rank=r, world_size=3)] for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(parts)
    first = next(iter(hf_dataset(path)))
    assert {"id", "weight", "text", "title", "domain"} <= set(first)
    assert len(hf_dataset(path, streaming=False)) == len(ids)


def test_from_a_server_and_download_names(papers_settings, weighted, tmp_path):
    server = LiveServer(papers_settings.root, workers=0).start()
    try:
        short = weighted["id"][:4]
        remote = subset_file(short, url=server.url, cache_dir=tmp_path / "dl")
        local = subset_file(weighted["id"], home=papers_settings.root)
        assert pl.read_parquet(remote).equals(pl.read_parquet(local))
        base = f"{server.url}/v1/manifests/{short}"
        out = tmp_path / "curl"
        out.mkdir()
        subprocess.run(["curl", "-sfOJ", f"{base}/subset?format=jsonl&with_text=true"], cwd=out, check=True)
        subprocess.run(["curl", "-sfO", f"{base}/subset.csv"], cwd=out, check=True)
        subprocess.run(["curl", "-sfOJ", f"{base}/subset"], cwd=out, check=True)
        names = sorted(p.name for p in out.iterdir())
        id12 = weighted["id"][:12]
        assert names == sorted([f"{id12}.subset-text.jsonl", "subset.csv", f"{id12}.subset.parquet"])
        assert pl.read_csv(out / "subset.csv")["id"].to_list() == pl.read_parquet(local)["id"].to_list()
    finally:
        server.stop()
