"""Pipeline steps through the real CLI: several sources, filter, exact/minhash dedup, selections that
feed selections, skipping completed steps, checks before anything runs, and what a failure reports."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

from curate.config import Settings
from curate.pool import Pool
from tests.conftest import PAPERS, REPO, run_cli

DATA = REPO / "data" / "pipeline"
SOURCES = [
    {"path": str(DATA / "debian-libs.jsonl"), "source": "libs", "id_field": "package", "text_field": "description",
     "domain_field": "section"},
    {"path": str(DATA / "debian-apps.csv"), "source": "apps", "id_field": "name", "text_field": "about"},
]  # fmt: skip


def write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def no_embedding_steps() -> list[dict]:
    return [
        {"step": "ingest", "name": "raw", "sources": copy.deepcopy(SOURCES)},
        {"step": "filter", "name": "clean", "length": {"min_words": 5}, "characters": {}},
        {"step": "dedup", "name": "exact", "method": "exact"},
        {"step": "dedup", "name": "fuzzy", "method": "minhash", "threshold": 0.7},
        {"step": "select", "name": "half", "selector": "random", "budget": 0.5, "seed": 3},
        {"step": "select", "name": "by-source", "from": "half", "selector": "stratified", "budget": 40,
         "params": {"by": "domain"}},
        {"step": "select", "name": "also-from-fuzzy", "from": "fuzzy", "selector": "random", "budget": 10},
    ]  # fmt: skip


def test_steps_chain_sources_filters_dedup_and_selections(tmp_path):
    home = tmp_path / "home"
    pipe = write(tmp_path / "p.yaml", {"name": "chain", "steps": no_embedding_steps()})
    result = json.loads(run_cli("run", str(pipe), "--json", home=home, check=True).stdout)
    rows = {r["step"]: r for r in result["steps"]}
    assert list(rows) == ["raw", "clean", "exact", "fuzzy", "half", "by-source", "also-from-fuzzy"]
    n_libs, n_apps = pl.read_ndjson(DATA / "debian-libs.jsonl").height, pl.read_csv(DATA / "debian-apps.csv").height
    assert rows["raw"]["sources"] == {"libs": n_libs, "apps": n_apps}
    assert rows["raw"]["records_out"] == n_libs + n_apps
    for parent, child in (("raw", "clean"), ("clean", "exact"), ("exact", "fuzzy"), ("fuzzy", "half"),
                          ("half", "by-source"), ("fuzzy", "also-from-fuzzy")):  # fmt: skip
        assert rows[child]["records_in"] == rows[parent]["records_out"], child
    assert rows["clean"]["metrics"]["removed"] > 0 and rows["clean"]["removed_by"]
    assert rows["fuzzy"]["metrics"]["removed"] > 0
    assert rows["by-source"]["records_out"] == 40
    settings = Settings(home=home)
    union = Pool.load(settings, "chain-raw")
    records = union.scan().select("id", "domain", "meta").collect()
    assert (
        records["id"].str.starts_with("libs:").sum() == n_libs
        and records["id"].str.starts_with("apps:").sum() == n_apps
    )
    sources = records["meta"].str.json_path_match("$.source")
    assert set(sources) == {"libs", "apps"}
    assert set(records.filter(sources == "apps")["domain"]) == {"apps"}  # no domain field: the source label
    half = set(pl.read_parquet(Path(rows["half"]["path"]) / "subset.parquet")["id"])
    last = pl.read_parquet(Path(rows["by-source"]["path"]) / "subset.parquet")
    assert set(last["id"]) <= half  # the selection's records were the next selection's pool
    docs = {
        name: json.loads((Path(r["path"]) / "manifest.json").read_text()) for name, r in rows.items() if "path" in r
    }
    assert docs["by-source"]["lineage"]["parents"] == [docs["half"]["id"]]
    assert docs["half"]["lineage"]["parents"] == [docs["fuzzy"]["id"]]
    assert docs["clean"]["lineage"]["parents"] == []
    for name, doc in docs.items():
        assert run_cli("manifest", "verify", doc["id"], home=home).returncode == 0, name
    fuzzy_removed = pl.read_parquet(Path(rows["fuzzy"]["path"]) / "removed.parquet")
    fuzzy_kept = pl.read_parquet(Path(rows["fuzzy"]["path"]) / "subset.parquet")
    assert set(fuzzy_removed["duplicate_of"]) <= set(fuzzy_kept["id"])
    again = json.loads(run_cli("run", str(pipe), "--json", home=home, check=True).stdout)
    assert all(r["cached"] for r in again["steps"])  # every step skipped
    assert [r.get("manifest") for r in again["steps"]] == [r.get("manifest") for r in result["steps"]]
    edited = no_embedding_steps()
    edited[3]["threshold"] = 0.8  # change one step: it and everything below it run again
    third = json.loads(run_cli("run", str(write(tmp_path / "p.yaml", {"name": "chain", "steps": edited})), "--json",
                               home=home, check=True).stdout)  # fmt: skip
    assert [r["cached"] for r in third["steps"]] == [True, True, True, False, False, False, False]


def test_bad_step_reference_exits_two_naming_the_field(tmp_path):
    steps = no_embedding_steps()
    steps[2]["from"] = "nope"
    proc = run_cli("run", str(write(tmp_path / "p.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.2.from" in proc.stderr and "p.yaml" in proc.stderr
    assert "earlier steps: raw, clean" in proc.stderr
    steps = no_embedding_steps()
    steps[5]["from"] = "also-from-fuzzy"  # a later step is not an input
    proc = run_cli("run", str(write(tmp_path / "p.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.5.from" in proc.stderr
    steps = no_embedding_steps()
    steps[0]["sources"][1]["path"] = str(tmp_path / "missing.csv")
    proc = run_cli("run", str(write(tmp_path / "p.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.0.sources.1.path" in proc.stderr and "missing.csv" in proc.stderr
    steps = no_embedding_steps()
    steps[3]["threshold"] = 1.5
    proc = run_cli("run", str(write(tmp_path / "p.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.3.threshold" in proc.stderr
    assert not (tmp_path / "h" / "pools").exists()  # nothing ran


def test_needs_are_checked_before_anything_runs(tmp_path):
    """Issue 16 item 7: `clusters: 0` then `stratified by=cluster` fails up front, naming the selection."""
    old = {
        "ingest": {"path": str(PAPERS), "pool": "p", "clusters": 0, "domain_field": "topic"},
        "selections": [{"selector": "random", "budget": 5}, {"selector": "stratified", "budget": 5,
                                                              "params": {"by": "cluster"}}],
    }  # fmt: skip
    proc = run_cli("run", str(write(tmp_path / "old.yaml", old)), home=tmp_path / "h")
    assert proc.returncode == 2 and "selections.1" in proc.stderr and "clusters" in proc.stderr
    steps = [{"step": "ingest", "name": "raw", "path": str(PAPERS), "clusters": 0},
             {"step": "dedup", "name": "sem", "method": "semantic"}]  # fmt: skip
    proc = run_cli("run", str(write(tmp_path / "new.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.1" in proc.stderr
    steps = [*no_embedding_steps()[:2], {"step": "select", "name": "t", "selector": "dsir", "budget": 5}]
    proc = run_cli("run", str(write(tmp_path / "t.yaml", {"steps": steps})), home=tmp_path / "h")
    assert proc.returncode == 2 and "steps.2.target" in proc.stderr
    assert not (tmp_path / "h" / "pools").exists()


def test_failure_mid_run_prints_what_did_run(tmp_path):
    """A need only the data can reveal (a domain the file lacks) fails at its step; the steps before it
    are listed, and a rerun skips them."""
    steps = [
        {"step": "ingest", "name": "raw", "path": str(DATA / "debian-apps.csv"), "text_field": "about",
         "id_field": "name"},
        {"step": "filter", "name": "clean", "length": {"min_words": 5}},
        {"step": "select", "name": "strata", "selector": "stratified", "budget": 10, "params": {"by": "domain"}},
    ]  # fmt: skip
    pipe = write(tmp_path / "p.yaml", {"name": "half", "steps": steps})
    proc = run_cli("run", str(pipe), home=tmp_path / "h")
    assert proc.returncode == 2 and "domain" in proc.stderr
    assert "steps completed before the failure" in proc.stderr
    listed = proc.stderr.split("steps completed before the failure:")[1]
    assert "raw" in listed and "clean" in listed and "strata" not in listed.split("error:")[0]
    proc = run_cli("run", str(pipe), "--json", home=tmp_path / "h")
    assert proc.returncode == 2
    completed = json.loads(proc.stdout)["error"]["details"]["completed"]
    assert [c["step"] for c in completed] == ["raw", "clean"]


def test_example_runs_and_resumes_after_kill_9(tmp_path):
    """The README's example (three sources, filters, minhash + semantic dedup, dsir → coverage), killed
    with SIGKILL while the minhash step's kept records are embedded (for the semantic step), then run
    again: the finished steps are skipped, nothing half-written is picked up, and the result is the
    uninterrupted run's."""
    example = REPO / "pipelines" / "examples" / "three_sources.yaml"
    env = {**os.environ, "CURATE_CACHE_DIR": str(tmp_path / "cache")}  # nothing embedded yet: the step takes a while
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "curate.cli", "run", str(example), "--json", "--home", str(home)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    markers = home / "steps"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(markers.glob("*.json")) if markers.exists() else []) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    time.sleep(1.0)  # inside the minhash step, whose output pool is embedded for the semantic step
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert len(list(markers.glob("*.json"))) == 2  # ingest, filter: done; minhash (embedding its survivors): not
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    rows = {r["step"]: r for r in result["steps"]}
    assert [r["cached"] for r in result["steps"]] == [True, True, False, False, False, False]
    assert rows["clean"]["metrics"]["removed"] > 0 and len(rows["clean"]["removed_by"]) >= 4
    assert rows["fuzzy"]["metrics"]["removed"] > 0 and rows["semantic"]["metrics"]["removed"] > 0
    assert rows["core"]["records_in"] == rows["science-like"]["records_out"] > rows["core"]["records_out"] > 0
    for r in rows.values():
        if "manifest" in r:
            assert run_cli("manifest", "verify", r["manifest"], home=home).returncode == 0
    fresh = subprocess.run([*cmd[:-2], "--home", str(tmp_path / "fresh")], env=env, capture_output=True, text=True,
                           timeout=900)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert [r.get("manifest") for r in json.loads(fresh.stdout)["steps"]] == [
        r.get("manifest") for r in result["steps"]
    ]
