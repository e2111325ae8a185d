"""The target kept in the manifest (issue 16 item 3), one definition per metric with its direction
(item 4) and report charts of many domains (item 9): numbers a manifest and its report show agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.manifest import verify
from curate.report import build_report
from curate.select import run_selection

from .conftest import REPO, run_cli, write_jsonl
from .test_report import embedded_data

TARGETS = REPO / "data" / "targets"


def _metrics(data: dict) -> dict:
    return {m["name"]: m for m in data["metrics"]}


def test_texts_target_is_kept_and_found_after_the_file_is_gone(papers_settings, tmp_path):
    target = tmp_path / "federated.jsonl"
    shutil.copy(TARGETS / "federated.jsonl", target)
    proc = run_cli("select", "--pool", "papers", "--selector", "dsir", "--budget", "40", "--target", str(target),
                   "--seed", "3", "--json", home=papers_settings.root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ref = doc["target"]
    assert ref["source"] == {"path": str(target.resolve())} and ref["copy"]["texts"] == "target/texts.parquet"
    kept = pl.read_parquet(Path(doc["path"]) / ref["copy"]["texts"])
    assert kept["text"].to_list() == pl.read_ndjson(target)["text"].to_list()
    assert kept["domain"].null_count() == kept.height and ref["domain_field"] is None  # the file has no labels
    assert {f["path"] for f in doc["files"]} == {"subset.parquet", "target/texts.parquet"}
    assert verify(Path(doc["path"])) == []

    target.unlink()  # moved away after the selection: the report still compares with it
    html, data = build_report(papers_settings, Path(doc["path"]))
    assert data["notes"] == []
    kl = _metrics(data)["kl_reduction"]
    assert "skipped" not in kl and kl["better_than_random"]
    assert kl["selection"] == doc["metrics"]["kl_reduction"] and kl["random"] == doc["metrics"]["kl_reduction_random"]
    assert "target/texts.parquet" in html and str(target.resolve()) in html

    copy = tmp_path / "tampered"
    shutil.copytree(doc["path"], copy)
    with open(copy / "target" / "texts.parquet", "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 1]))
    assert any("target/texts.parquet" in p for p in verify(copy))


def test_target_with_its_own_domains_and_vectors(papers_settings):
    """tarot embeds the target once: the vectors are kept, the report reuses them, and the target
    file's topic field (named like the pool's domain field) is the report's target domain mix."""
    target = TARGETS / "multimodal.jsonl"
    doc = run_selection(papers_settings, pool="papers", selector="tarot", budget=60, target=str(target))
    ref = doc["target"]
    assert ref["domain_field"] == "topic" and ref["copy"]["embeddings"] == "target/embeddings.npy"
    rows = pl.read_ndjson(target)
    vectors = np.load(Path(doc["path"]) / ref["copy"]["embeddings"])
    assert vectors.shape == (rows.height, 384)
    html, data = build_report(papers_settings, Path(doc["path"]))
    dom = data["histograms"]["domain"]
    own = rows["topic"].value_counts()
    expected = [dict(own.iter_rows()).get(n, 0) / rows.height for n in dom["names"]]
    np.testing.assert_allclose(dom["target"], expected, atol=1e-6)
    metrics = _metrics(data)
    for name in ("ot_distance", "coverage", "domain_tv", "mean_tokens"):  # one definition: the very same numbers
        assert metrics[name]["selection"] == doc["metrics"][name], name
        assert metrics[name]["random"] == doc["metrics"][f"{name}_random"], name
        assert doc["metrics"]["quality"][name]["better"] == metrics[name]["better"]
    assert metrics["ot_distance"]["better_than_random"]


@pytest.mark.parametrize(
    ("selector", "params"),
    [("coverage", {"score": "prototypicality"}), ("smart", {"by": "domain"}), ("stratified", {"by": "domain"})],
)
def test_every_selection_gets_metrics_beside_random_with_direction(papers_settings, selector, params):
    doc = run_selection(papers_settings, pool="papers", selector=selector, budget=60, params=params)
    m = doc["metrics"]
    assert m["quality"]["coverage"]["better"] == "lower" and m["quality"]["domain_tv"]["better"] == "lower"
    assert m["coverage"] > 0 and m["coverage_random"] > 0
    assert {"selection", "random", "random_std", "better_than_random"} <= set(m["quality"]["coverage"])
    lengths = m["quality"]["mean_tokens"]
    assert lengths["better"] == "closer" and lengths["target"] is None and lengths["reference"] == lengths["pool"]
    assert m["mean_tokens_pool"] == lengths["pool"] > 0 and m["mean_tokens_selected"] > 0
    _, data = build_report(papers_settings, Path(doc["path"]))
    report = _metrics(data)
    assert report["coverage"]["selection"] == m["coverage"] and report["coverage"]["random"] == m["coverage_random"]
    if selector == "stratified":  # proportional by construction: its domain mix is the pool's
        assert m["domain_tv"] < m["domain_tv_random"]


def test_summary_says_which_way_is_better(papers_settings):
    proc = run_cli("select", "--pool", "papers", "--selector", "coverage", "--budget", "40", "--param",
                   "score=prototypicality", home=papers_settings.root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "metrics:" in ln)
    assert "coverage=" in line and "lower is better" in line and "random " in line
    assert "closer to target is better" in line  # mean_tokens


def test_report_with_many_domains_groups_the_tail_and_shows_samples(tmp_path):
    s = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    rows = []
    for d in range(55):  # 55 domains, unequal sizes
        for i in range(4 + d % 7):
            text = " ".join(rng.choice(words, 8)) + f" topic{d} note {i}"
            rows.append({"id": f"{d}-{i}", "text": text, "domain": f"section-number-{d:02d}"})
    ingest(s, write_jsonl(tmp_path / "many.jsonl", rows), "many", IngestParams(embed=False))
    doc = run_selection(s, pool="many", selector="stratified", budget=150, params={"by": "domain"})
    html, data = build_report(s, Path(doc["path"]))
    dom = data["histograms"]["domain"]
    assert len(dom["names"]) == 55  # the data keeps every domain
    assert "other (26 more)" in html  # the chart: 29 largest + one "other" bar
    shown = [n for n in dom["names"] if f">{n}<" in html.split('<section id="domains">')[1].split("</figure>")[0]]
    assert 0 < len(shown) <= 29
    samples = dom["samples"]
    assert 0 < len(samples) <= 40 and all(1 <= len(t) <= 3 for t in samples.values())
    by_id = {r["text"]: r["domain"] for r in rows}
    assert all(by_id[t] == name for name, texts in samples.items() for t in texts)
    assert html.count('<tr data-domain="') == len(samples)
    assert embedded_data(html)["histograms"]["domain"]["samples"] == samples
