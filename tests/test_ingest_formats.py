"""Every input format lands as the same pool, and chunking never changes the result."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.pool import Pool

from .conftest import PAPERS

NO_FEATURES = dict(embed=False, id_field="id", domain_field="topic")


@pytest.fixture(scope="module")
def papers_rows() -> list[dict]:
    return [json.loads(line) for line in PAPERS.read_text().splitlines()[:150]]


def _write_all_formats(tmp: Path, rows: list[dict]) -> dict[str, Path]:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    paths = {"jsonl": tmp / "r.jsonl", "gz": tmp / "r.jsonl.gz", "zst": tmp / "r.jsonl.zst"}
    paths["jsonl"].write_bytes(body)
    paths["gz"].write_bytes(gzip.compress(body))
    paths["zst"].write_bytes(zstandard.ZstdCompressor().compress(body))
    frame = pl.DataFrame(rows)
    paths["parquet"] = tmp / "r.parquet"
    frame.write_parquet(paths["parquet"])
    paths["csv"] = tmp / "r.csv"
    frame.write_csv(paths["csv"])
    return paths


def test_every_format_gives_the_same_pool(tmp_path: Path, papers_rows: list[dict]) -> None:
    paths = _write_all_formats(tmp_path, papers_rows)
    results = {}
    for fmt, path in paths.items():
        s = Settings(home=tmp_path / f"home-{fmt}")
        report = ingest(s, path, "p", IngestParams(**NO_FEATURES))
        pool = Pool.load(s, "p")
        frame = pool.scan().select("id", "text", "domain").collect()
        results[fmt] = (report["pool"]["fingerprint"], frame)
    fingerprints = {fp for fp, _ in results.values()}
    assert len(fingerprints) == 1, results.keys()
    reference = results["jsonl"][1]
    assert reference.height == len(papers_rows)
    assert reference["id"].to_list() == [r["id"] for r in papers_rows]
    assert reference["domain"].to_list() == [r["topic"] for r in papers_rows]
    for fmt, (_, frame) in results.items():
        assert frame.equals(reference), fmt


def test_other_columns_are_kept_as_metadata(settings: Settings, papers_rows: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({**r, "score": i}) + "\n" for i, r in enumerate(papers_rows[:5])))
    ingest(settings, path, "p", IngestParams(**NO_FEATURES))
    meta = Pool.load(settings, "p").column("meta").to_list()
    decoded = [json.loads(m) for m in meta]
    assert [d["title"] for d in decoded] == [r["title"] for r in papers_rows[:5]]
    assert [d["score"] for d in decoded] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_small_chunks_give_identical_pool(tmp_path: Path, papers_rows: list[dict], fmt: str) -> None:
    path = _write_all_formats(tmp_path, papers_rows)[fmt]
    whole = Settings(home=tmp_path / "whole")
    chunked = Settings(home=tmp_path / "chunked")
    ingest(whole, path, "p", IngestParams(**NO_FEATURES))
    report = ingest(chunked, path, "p", IngestParams(**NO_FEATURES, chunk_rows=7, chunk_bytes=4096))
    a, b = Pool.load(whole, "p"), Pool.load(chunked, "p")
    assert a.fingerprint == b.fingerprint
    assert a.scan().collect().equals(b.scan().collect())
    assert report["read"]["records"] == len(papers_rows)
    # the n-gram artifact does not depend on how the input was chunked either
    assert (a.ngrams().matrix() != b.ngrams().matrix()).nnz == 0


def test_ids_generated_from_text_when_absent(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "noid.jsonl"
    path.write_text('{"text": "alpha beta"}\n\n{"text": "gamma"}\n{"text": "alpha beta"}\n')
    report = ingest(settings, path, "p", IngestParams(embed=False))
    ids = Pool.load(settings, "p").column("id").to_list()
    assert len(ids) == 3 and len(set(ids)) == 3
    assert ids[2] == ids[0] + "-1"  # the repeat of a text gets an occurrence suffix
    assert report["duplicates"]["duplicate_text_records"] == 1
    # stable: the same text always gets the same id, in any home
    other = Settings(home=tmp_path / "other")
    ingest(other, path, "p", IngestParams(embed=False))
    assert Pool.load(other, "p").column("id").to_list() == ids


def test_duplicate_texts_counted_across_chunks_and_dropped(settings: Settings, tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"text number {i % 40}"} for i in range(200)]
    path = tmp_path / "dups.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest(settings, path, "d", IngestParams(embed=False, drop_duplicates=True, chunk_bytes=1024))
    assert report["duplicates"]["duplicate_text_records"] == 160
    assert report["duplicates"]["dropped_duplicate_texts"] == 160
    pool = Pool.load(settings, "d")
    assert pool.n_records == 40
    assert pool.column("id").to_list() == [str(i) for i in range(40)]  # first occurrences, in order
    assert pool.column("row_id").to_list() == list(range(40))


def test_reingest_is_idempotent_and_conflicts_are_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "1", "text": "one"}\n{"id": "2", "text": "two"}\n')
    first = ingest(settings, path, "p", IngestParams(embed=False))
    again = ingest(settings, path, "p", IngestParams(embed=False))
    assert again["pool"]["id"] == first["pool"]["id"]
    assert again["stages"]["ngrams"]["cached"] is True
    path.write_text('{"id": "1", "text": "one"}\n{"id": "2", "text": "changed"}\n')
    from curate.errors import ConflictError

    with pytest.raises(ConflictError, match="already exists"):
        ingest(settings, path, "p", IngestParams(embed=False))
    replaced = ingest(settings, path, "p", IngestParams(embed=False, replace=True))
    assert replaced["pool"]["fingerprint"] != first["pool"]["fingerprint"]
    assert Pool.load(settings, "p").column("text").to_list() == ["one", "changed"]
