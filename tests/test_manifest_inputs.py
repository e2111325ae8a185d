"""What a manifest id covers (issue 16 item 1), id prefixes and listing (item 9), budget warnings
(item 5): one pool file ingested twice with different clusterings must never share a manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.manifest import locate, verify
from curate.records import canonical_json, sha256_hex
from curate.select import run_selection

from .conftest import PAPERS, run_cli

MAPPING = {"id_field": "id", "domain_field": "topic"}


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> Settings:
    """Pools 'a' (6 clusters) and 'b' (3 clusters) from the same file; embeddings come from the cache."""
    s = Settings(home=tmp_path_factory.mktemp("twins") / "home")
    ingest(s, PAPERS, "a", IngestParams(**MAPPING, clusters=6))
    ingest(s, PAPERS, "b", IngestParams(**MAPPING, clusters=3))
    return s


def test_same_file_other_clustering_gets_its_own_manifest(twins):
    a = run_selection(twins, pool="a", selector="stratified", budget=60, params={"by": "cluster"})
    b = run_selection(twins, pool="b", selector="stratified", budget=60, params={"by": "cluster"})
    assert a["id"] != b["id"]
    assert (a["pool"]["name"], a["metrics"]["strata"]) == ("a", 6)
    assert (b["pool"]["name"], b["metrics"]["strata"]) == ("b", 3)
    fa, fb = a["pool"]["features"], b["pool"]["features"]
    assert set(fa) == set(fb) == {"ngrams", "embed", "cluster"}
    assert fa["cluster"]["config"] != fb["cluster"]["config"] and fa["embed"] == fb["embed"]
    assert len(fa["embed"]["model"]) == 64  # the model's content hash, not its name
    assert verify(Path(a["path"])) == [] and verify(Path(b["path"])) == []
    # even random differs: its subset carries the cluster column
    ra = run_selection(twins, pool="a", selector="random", budget=20)
    rb = run_selection(twins, pool="b", selector="random", budget=20)
    assert ra["id"] != rb["id"] and ra["pool"]["id"] != rb["pool"]["id"]


def test_verify_recomputes_the_extended_id(twins, tmp_path):
    doc = run_selection(twins, pool="a", selector="random", budget=15, seed=4)
    copy = tmp_path / "copy"
    shutil.copytree(doc["path"], copy)
    header = json.loads((copy / "manifest.json").read_text())
    header["pool"]["features"]["cluster"]["config"] = "0" * 64  # claims another clustering
    (copy / "manifest.json").write_text(json.dumps(header))
    assert any("does not match" in p for p in verify(copy))


def test_manifest_written_before_the_extended_id_still_verifies(twins, tmp_path):
    doc = run_selection(twins, pool="a", selector="random", budget=12, seed=5)
    old = tmp_path / "old"
    shutil.copytree(doc["path"], old)
    header = json.loads((old / "manifest.json").read_text())
    header["pool"].pop("features")
    sel = {k: v for k, v in header["selector"].items() if k != "params"}
    payload = {  # DESIGN.md's manifest v1 id, as curate wrote it before issue 16
        "pool": {"fingerprint": header["pool"]["fingerprint"]},
        "selector": sel,
        "params": header["selector"]["params"],
        "budget": header["budget"]["requested"],
        "seed": header["seed"],
        "target": None,
    }
    header["id"] = sha256_hex(canonical_json(payload))
    for key in ("id_inputs", "warnings", "budget_note"):
        header.pop(key, None)
    (old / "manifest.json").write_text(json.dumps(header))
    assert verify(old) == []
    header["seed"] = 6
    (old / "manifest.json").write_text(json.dumps(header))
    assert any("does not match" in p for p in verify(old))


def test_reingest_keeps_the_clustering_unless_asked_and_says_when_it_changes(tmp_path):
    s = Settings(home=tmp_path / "home")
    ingest(s, PAPERS, "p", IngestParams(**MAPPING, clusters=5))
    before = run_selection(s, pool="p", selector="stratified", budget=50, params={"by": "cluster"})
    again = ingest(s, PAPERS, "p", IngestParams(**MAPPING))  # e.g. POST /ingest {"embed": true}
    assert again["stages"]["cluster"]["k"] == 5 and again["stages"]["cluster"]["cached"]
    assert again["warnings"] == []
    same = run_selection(s, pool="p", selector="stratified", budget=50, params={"by": "cluster"})
    assert same["id"] == before["id"]
    changed = ingest(s, PAPERS, "p", IngestParams(**MAPPING, clusters=4))
    assert changed["stages"]["cluster"]["k"] == 4
    assert len(changed["warnings"]) == 1 and "cluster" in changed["warnings"][0] and "k=5" in changed["warnings"][0]
    after = run_selection(s, pool="p", selector="stratified", budget=50, params={"by": "cluster"})
    assert after["id"] != before["id"] and after["metrics"]["strata"] == 4
    assert verify(Path(before["path"])) == []  # the old manifest stays valid, under its own id


def test_short_id_prefixes_and_manifest_list(twins):
    doc = run_selection(twins, pool="a", selector="random", budget=10, seed=21)
    assert locate(twins, doc["id"][:4]) == Path(doc["path"])
    shown = run_cli("manifest", "show", doc["id"][:4], "--json", home=twins.root)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == doc["id"]
    too_short = run_cli("manifest", "show", doc["id"][:3], home=twins.root)
    assert too_short.returncode == 2 and "4" in too_short.stderr
    listed = run_cli("manifest", "list", "--json", home=twins.root)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["manifests"]
    mine = next(r for r in rows if r["id"] == doc["id"])
    assert mine["pool"] == "a" and mine["selector"] == "random" and mine["selected"] == 10
    only_b = json.loads(run_cli("manifest", "list", "--pool", "b", "--json", home=twins.root).stdout)["manifests"]
    assert all(r["pool"] == "b" for r in only_b)
    human = run_cli("manifest", "list", home=twins.root).stdout
    assert doc["id"][:12] in human and "random" in human


def test_budget_past_the_pool_or_zero_warns(twins):
    everything = run_selection(twins, pool="a", selector="random", budget=5000)
    assert everything["budget"]["selected"] == 427
    assert any("5000" in w and "427" in w for w in everything["warnings"])
    empty = run_selection(twins, pool="a", selector="random", budget=0)
    assert empty["budget"]["selected"] == 0 and any("empty" in w for w in empty["warnings"])
    floored = run_selection(twins, pool="a", selector="random", budget=0.001)
    assert floored["budget"]["selected"] == 0 and any("0.001" in w for w in floored["warnings"])
    plain = run_selection(twins, pool="a", selector="random", budget=100)
    assert plain["warnings"] == []
    one = run_selection(twins, pool="a", selector="random", budget=1)
    whole = run_selection(twins, pool="a", selector="random", budget=1.0)
    assert one["budget"]["selected"] == 1 and whole["budget"]["selected"] == 427
    assert "count" in one["budget_note"] and "1.0" in one["budget_note"]
    assert "fraction" in whole["budget_note"] and "427" in whole["budget_note"]

    cli = run_cli("select", "--pool", "a", "--selector", "random", "--budget", "5000", "--json", home=twins.root)
    assert cli.returncode == 0, cli.stderr
    assert "warning:" in cli.stderr and "5000" in cli.stderr
    assert json.loads(cli.stdout)["warnings"] == everything["warnings"]
    human = run_cli("select", "--pool", "a", "--selector", "random", "--budget", "1", home=twins.root)
    assert "a count" in human.stdout and "warning" not in human.stderr
