"""Manifest v1: exact schema, deterministic ids and bytes, verification, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.manifest import SUBSET_SCHEMA, export, verify
from curate.select import run_selection

from .conftest import PAPERS, run_cli


@pytest.fixture(scope="module")
def two_homes(tmp_path_factory) -> tuple[Settings, Settings]:
    homes = []
    for name in ("one", "two"):
        s = Settings(home=tmp_path_factory.mktemp(name) / "home")
        ingest(s, PAPERS, "papers", IngestParams(embed=False, id_field="id", domain_field="topic"))
        homes.append(s)
    return homes[0], homes[1]


def test_same_inputs_same_id_and_identical_bytes(two_homes) -> None:
    a, b = two_homes
    docs = [run_selection(s, pool="papers", selector="stratified", budget=0.3, seed=7) for s in (a, b)]
    assert docs[0]["id"] == docs[1]["id"]
    assert (Path(docs[0]["path"]) / "subset.parquet").read_bytes() == (
        Path(docs[1]["path"]) / "subset.parquet"
    ).read_bytes()
    other_seed = run_selection(a, pool="papers", selector="stratified", budget=0.3, seed=8)
    other_budget = run_selection(a, pool="papers", selector="stratified", budget=0.31, seed=7)
    assert len({docs[0]["id"], other_seed["id"], other_budget["id"]}) == 3


def test_manifest_document_and_subset_schema(two_homes) -> None:
    a, _ = two_homes
    doc = run_selection(a, pool="papers", selector="random", budget=40, seed=3)
    on_disk = json.loads((Path(doc["path"]) / "manifest.json").read_text())
    assert on_disk["manifest_version"] == 1 and len(on_disk["id"]) == 64
    assert set(on_disk) >= {
        "id",
        "created_at",
        "pool",
        "target",
        "selector",
        "budget",
        "seed",
        "mixture",
        "metrics",
        "files",
        "lineage",
        "software",
    }
    assert on_disk["created_at"].endswith("Z")
    assert on_disk["pool"]["n_records"] == 427 and on_disk["target"] is None
    assert on_disk["selector"] == {"name": "random", "version": "1", "params": {}}
    assert on_disk["budget"] == {"requested": 40, "selected": 40}
    assert on_disk["files"][0]["path"] == "subset.parquet" and on_disk["files"][0]["rows"] == 40
    assert {"curate", "python", "numpy"} <= set(on_disk["software"])
    table = pq.read_table(Path(doc["path"]) / "subset.parquet")
    assert table.schema.equals(SUBSET_SCHEMA)
    frame = pl.from_arrow(table)
    assert frame["rank"].to_list() == list(range(40))
    assert frame["weight"].mean() == pytest.approx(1.0, abs=1e-12)
    assert frame["cluster"].null_count() == 40  # this pool has no clusters
    assert verify(Path(doc["path"])) == []


def test_verify_catches_a_flipped_byte(two_homes, tmp_path: Path) -> None:
    a, _ = two_homes
    doc = run_selection(a, pool="papers", selector="random", budget=25, seed=11)
    copy = tmp_path / "copy"
    shutil.copytree(doc["path"], copy)
    assert run_cli("manifest", "verify", str(copy)).returncode == 0
    data = bytearray((copy / "subset.parquet").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "subset.parquet").write_bytes(bytes(data))
    proc = run_cli("manifest", "verify", str(copy))
    assert proc.returncode == 2 and "sha256" in proc.stderr
    # tampering with the header is caught too: the id no longer matches the contents
    shutil.rmtree(copy)
    shutil.copytree(doc["path"], copy)
    header = json.loads((copy / "manifest.json").read_text())
    header["seed"] = 12
    (copy / "manifest.json").write_text(json.dumps(header))
    assert any("does not match" in p for p in verify(copy))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_export_formats_with_text(two_homes, tmp_path: Path, fmt: str) -> None:
    a, _ = two_homes
    doc = run_selection(a, pool="papers", selector="random", budget=30, seed=5)
    out = export(a, Path(doc["path"]), fmt, tmp_path / f"s.{fmt}", with_text=True)
    frame = {"parquet": pl.read_parquet, "jsonl": pl.read_ndjson, "csv": pl.read_csv}[fmt](out)
    subset = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    assert frame["id"].to_list() == subset["id"].to_list()
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in PAPERS.read_text().splitlines()}
    assert frame["text"].to_list() == [texts[i] for i in subset["id"].to_list()]


def test_out_copies_the_manifest_folder(two_homes, tmp_path: Path) -> None:
    a, _ = two_homes
    doc = run_selection(a, pool="papers", selector="random", budget=10, seed=9, out=tmp_path / "exported")
    assert verify(tmp_path / "exported") == []
    assert json.loads((tmp_path / "exported" / "manifest.json").read_text())["id"] == doc["id"]
