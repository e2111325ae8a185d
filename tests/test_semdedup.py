"""Semantic dedup: planted near-duplicates go, distinct texts stay; `curate dedup` writes a valid manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.dedup import run_dedup
from curate.ingest import IngestParams, ingest
from curate.manifest import verify
from curate.stages.semdedup import resolve_duplicates, similar_pairs
from tests.conftest import PAPERS, run_cli, write_jsonl


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """80 distinct paper titles, then 10 punctuation variants and 10 paraphrases of other titles."""
    from curate.config import Settings

    titles = [json.loads(line)["title"] for line in PAPERS.read_text().splitlines()][:80]
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(titles)]
    for i in range(10):
        words = titles[i].split()
        rows.append({"id": f"punct{i}", "text": " ".join(words[:-1]) + " (" + words[-1] + ")"})
    for i in range(10, 20):
        rows.append(
            {"id": f"para{i}", "text": "In this paper, " + titles[i][0].lower() + titles[i][1:] + " is studied."}
        )
    tmp = tmp_path_factory.mktemp("dedup")
    settings = Settings(home=tmp / "home")
    ingest(settings, write_jsonl(tmp / "planted.jsonl", rows), "planted", IngestParams(clusters=4))
    return settings


def kept_ids(doc: dict) -> set[str]:
    return set(pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"])


def test_cli_removes_planted_copies_and_keeps_distinct(planted):
    proc = run_cli("dedup", "--pool", "planted", "--eps", "0.1", "--keep", "first", "--json", home=planted.home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert kept_ids(doc) == {f"t{i}" for i in range(80)}  # every copy gone, every distinct title kept
    assert doc["metrics"]["removed"] == 20 and doc["selector"]["name"] == "semdedup"
    assert verify(Path(doc["path"])) == []
    scores = pl.read_parquet(Path(doc["path"]) / "subset.parquet").sort("id")
    absorbed = dict(zip(scores["id"], scores["score"], strict=True))
    assert absorbed["t0"] == 1 and absorbed["t50"] == 0  # the kept record names how many copies it stands for


def test_tight_eps_keeps_paraphrases_but_drops_punctuation_variants(planted):
    doc = run_dedup(planted, pool="planted", params={"eps": 0.02, "keep": "first"})
    kept = kept_ids(doc)
    assert {f"t{i}" for i in range(80)} <= kept
    assert not any(f"punct{i}" in kept for i in range(10))  # cosine ≈ 0.99
    assert sum(f"para{i}" in kept for i in range(10, 20)) >= 8  # cosine ≈ 0.95–0.97 survives eps 0.02


def test_centroid_rule_keeps_exactly_one_of_each_pair(planted):
    kept = kept_ids(run_dedup(planted, pool="planted", params={"eps": 0.1}))
    assert len(kept) == 80
    for i in range(20):
        copy = f"punct{i}" if i < 10 else f"para{i}"
        assert (f"t{i}" in kept) != (copy in kept)


def test_kept_versus_any_earlier_criterion():
    # A ~ B and B ~ C but A !~ C: keeping A drops B; C's only earlier neighbour B was dropped.
    pos = np.array([0, 1, 2])
    i, j = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
    assert resolve_duplicates(pos, i, j, "kept").tolist() == [-1, 0, -1]
    assert resolve_duplicates(pos, i, j, "any_earlier").tolist() == [-1, 0, 1]


def test_similar_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x[150:] = x[:150] + 0.05 * rng.normal(size=(150, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    i, j = similar_pairs(x, 0.95)
    sims = x @ x.T
    np.fill_diagonal(sims, 0)
    want = set(zip(*np.nonzero(sims > 0.95), strict=True))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(int(a), int(b)) for a, b in want}


def test_dedup_needs_clusters(settings, tmp_path):
    ingest(
        settings,
        write_jsonl(tmp_path / "a.jsonl", [{"text": "a b"}, {"text": "c d"}]),
        "bare",
        IngestParams(embed=False),
    )
    proc = run_cli("dedup", "--pool", "bare", home=settings.home)
    assert proc.returncode == 2 and "clusters" in proc.stderr
    proc = run_cli("dedup", "--pool", "bare", "--eps", "2", home=settings.home)
    assert proc.returncode == 2 and "eps" in proc.stderr


def test_pipeline_dedups_then_selects_on_the_kept_records(tmp_path):
    """`dedup:` in a pipeline file: the kept records become pool '<pool>-dedup' (ids, texts and
    domains carried over) and every selection runs on it."""
    import yaml

    titles = [json.loads(line)["title"] for line in PAPERS.read_text().splitlines()][:40]
    rows = [{"id": f"t{i}", "text": t, "domain": f"d{i % 2}"} for i, t in enumerate(titles)]
    rows += [{"id": f"copy{i}", "text": titles[i] + ".", "domain": "d0"} for i in range(0, 10, 2)]
    write_jsonl(tmp_path / "pool.jsonl", rows)
    spec = {
        "ingest": {"path": "pool.jsonl", "pool": "small", "clusters": 2},
        "dedup": {"eps": 0.1, "keep": "first"},
        "selections": [{"selector": "stratified", "budget": 1.0, "params": {"by": "domain"}}],
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cli("run", str(tmp_path / "p.yaml"), "--json", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["pool"] == "small-dedup"
    dedup, selection = result["selections"]
    assert dedup["selector"] == "semdedup" and dedup["metrics"]["removed"] == 5
    doc = json.loads((Path(selection["path"]) / "manifest.json").read_text())
    assert doc["pool"]["name"] == "small-dedup" and doc["pool"]["n_records"] == 40
    subset = pl.read_parquet(Path(selection["path"]) / "subset.parquet")
    assert set(subset["id"]) == {f"t{i}" for i in range(40)}
    assert subset.sort("id").filter(pl.col("id") == "t1")["domain"].to_list() == ["d1"]


def test_manifest_lists_removed_ids_and_what_each_duplicated(planted):
    doc = run_dedup(planted, pool="planted", params={"eps": 0.1, "keep": "first"})
    removed = pl.read_parquet(Path(doc["path"]) / "removed.parquet")
    expected = {f"punct{i}": f"t{i}" for i in range(10)} | {f"para{i}": f"t{i}" for i in range(10, 20)}
    assert dict(zip(removed["id"], removed["duplicate_of"], strict=True)) == expected
    assert (removed["similarity"] > 0.9).all() and set(removed["reason"]) == {"semdedup"}
    assert any(f["path"] == "removed.parquet" for f in doc["files"]) and verify(Path(doc["path"])) == []
