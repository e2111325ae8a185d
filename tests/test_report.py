"""Selection reports for every selector on the papers pool: each section is there and every number
is recomputed here independently (numpy brute force, POT, polars) from the manifest and the pool."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import ot
import polars as pl
import pytest

from curate.pool import Pool
from curate.quality import RANDOM_DRAWS
from curate.report import build_report
from curate.select import run_selection
from curate.selectors.base import REGISTRY, get_selector
from curate.stages.embed import EmbedParams, encode
from tests.conftest import PAPERS, REPO, run_cli

TARGETS = REPO / "data" / "targets"
SELECTIONS = {
    "random": {"budget": 50},
    "stratified": {"budget": 100, "params": {"by": "cluster"}},
    "dsir": {"budget": 40, "target": TARGETS / "federated.jsonl", "params": {"normalize_length_to": 128}},
    "coverage": {"budget": 0.1, "params": {"score": "prototypicality"}},
    "tarot": {"budget": 60, "target": TARGETS / "multimodal.jsonl"},
    "smart": {"budget": 100, "params": {"by": "domain"}},
}
SECTIONS = ("header", "metrics", "domains", "clusters", "map", "weights", "scores")


def embedded_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "report has no embedded data block"
    return json.loads(m.group(1).replace("<\\/", "</"))


def _odm_manifest(settings) -> dict:
    from curate import mixing  # imported first, curate.mixing meets a circular import via selectors/odm

    info = mixing.create_session(settings, pool="papers", group_by="domain", params={"warmup_steps": 1}, seed=3)
    for _ in range(5):
        batch = mixing.next_batch(settings, info["id"], 16, with_text=False)
        losses = {m["group"]: 1.0 + info["groups"].index(m["group"]) for m in batch["micro_batches"]}
        mixing.feedback(settings, info["id"], batch["step"], losses)
    return mixing.freeze(settings, info["id"])


@pytest.fixture(scope="module")
def reports(papers_settings) -> dict:
    out = {}
    for name, spec in SELECTIONS.items():
        target = str(spec["target"]) if "target" in spec else None
        doc = run_selection(
            papers_settings, pool="papers", selector=name, budget=spec["budget"], params=spec.get("params"),
            seed=0, target=target,
        )  # fmt: skip
        html, data = build_report(papers_settings, Path(doc["path"]), target=target)
        out[name] = (doc, html, data)
    doc = _odm_manifest(papers_settings)
    html, data = build_report(papers_settings, Path(doc["path"]))
    out["odm"] = (doc, html, data)
    return out


@pytest.fixture(scope="module")
def pool_facts(papers_settings) -> dict:
    pool = Pool.load(papers_settings, "papers")
    ids = pool.column("id").to_list()
    topics = dict(pl.read_ndjson(PAPERS).select("id", "topic").iter_rows())
    return {
        "pool": pool,
        "row_of": {i: r for r, i in enumerate(ids)},
        "domains": np.array([topics[i] for i in ids]),
        "emb": np.asarray(pool.embeddings(), np.float64),
    }


@functools.cache
def _target_emb(path: Path) -> np.ndarray:
    texts = pl.read_ndjson(path)["text"].to_list()
    return np.asarray(encode(texts, EmbedParams()), np.float64)


def _fractions(labels: np.ndarray, names: list[str]) -> np.ndarray:
    return np.array([(labels == n).sum() for n in names], np.float64) / len(labels)


def test_every_selector_is_reported():
    get_selector("random")
    assert set(REGISTRY) <= {*SELECTIONS, "odm"}, "add the new selector to SELECTIONS"  # odm: a frozen session


@pytest.mark.parametrize("name", [*SELECTIONS, "odm"])
def test_sections_header_and_histograms(reports, pool_facts, name):
    doc, html, data = reports[name]
    assert embedded_data(html)["header"]["id"] == doc["id"]
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert ('<section id="odm">' in html) == (name == "odm")
    assert doc["id"] in html and doc["pool"]["fingerprint"] in html and doc["files"][0]["sha256"] in html
    assert html.count("<svg") >= 5
    # self-contained: nothing fetched at view time, and a CSP that forbids it anyway
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|<link\b|<script[^>]+src=|@import|url\(\s*['"]?http""", html
    )
    assert "default-src 'none'" in html

    subset = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    rows = np.array([pool_facts["row_of"][i] for i in subset["id"].to_list()])
    dom = data["histograms"]["domain"]
    np.testing.assert_allclose(dom["selection"], _fractions(subset["domain"].to_numpy(), dom["names"]), atol=1e-6)
    np.testing.assert_allclose(dom["pool"], _fractions(pool_facts["domains"], dom["names"]), atol=1e-6)
    clu = data["histograms"]["cluster"]
    counts = np.bincount(subset["cluster"].to_numpy(), minlength=len(clu["names"]))
    assert clu["selection_counts"] == counts.tolist()
    assert clu["pool_counts"] == np.bincount(np.asarray(pool_facts["pool"].clusters()), minlength=8).tolist()

    w = subset["weight"].to_numpy()
    assert data["weights"]["n"] == len(w) == doc["budget"]["selected"]
    assert data["weights"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert data["weights"]["max"] == pytest.approx(w.max(), abs=1e-6)
    assert sum(data["weights"]["hist"]["counts"]) == len(w)
    scores = subset["score"].drop_nulls().to_numpy()
    if len(scores):
        assert data["scores"]["selector"]["mean"] == pytest.approx(scores.mean(), abs=1e-5)
    else:
        assert data["scores"]["selector"] is None
    rep = data["scores"]["report"]
    assert rep["selected"]["n"] == len(rows) and rep["not_selected"]["n"] == pool_facts["pool"].n_records - len(rows)
    assert data["map"]["method"] == "pca" and len(data["map"]["selection"]) == len(rows)


@pytest.mark.parametrize("name", [*SELECTIONS, "odm"])
def test_metrics_recomputed_independently(reports, pool_facts, name):
    doc, html, data = reports[name]
    metrics = {m["name"]: m for m in data["metrics"]}
    subset = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    rows = np.array([pool_facts["row_of"][i] for i in subset["id"].to_list()])
    emb, domains = pool_facts["emb"], pool_facts["domains"]
    target_path = SELECTIONS.get(name, {}).get("target")
    tgt = _target_emb(target_path) if target_path else None

    # coverage: every pool record is a query (427 < 1000); brute-force nearest selected record
    d2 = ((emb[:, None, :] - emb[None, rows, :]) ** 2).sum(-1)
    assert metrics["coverage"]["selection"] == pytest.approx(np.sqrt(d2.min(1)).mean(), rel=1e-4)

    # domain mix: vs the pool, or (targeted) vs target texts labelled by their nearest pool record
    names = sorted(set(domains))
    ref = _fractions(domains, names) if tgt is None else _fractions(domains[np.argmax(tgt @ emb.T, 1)], names)
    tv = 0.5 * np.abs(_fractions(domains[rows], names) - ref).sum()
    assert metrics["domain_tv"]["selection"] == pytest.approx(tv, abs=1e-6)

    if tgt is None:
        assert "needs target" in metrics["ot_distance"]["skipped"] and "skipped" in metrics["kl_reduction"]
    else:
        cost = np.sqrt(np.maximum(2 - 2 * emb[rows] @ tgt.T, 0))
        expected = ot.emd2(np.full(len(rows), 1 / len(rows)), np.full(len(tgt), 1 / len(tgt)), cost)
        assert metrics["ot_distance"]["selection"] == pytest.approx(expected, abs=1e-5)
        assert metrics["ot_distance"]["better_than_random"] and metrics["kl_reduction"]["better_than_random"]
    if name == "dsir":  # same formula, same target, same pool n-grams as the selector's own number
        assert metrics["kl_reduction"]["selection"] == pytest.approx(doc["metrics"]["kl_reduction"], abs=1e-6)

    for m in metrics.values():
        if "skipped" in m:
            continue
        assert m["random_draws"] == RANDOM_DRAWS
        row = re.search(rf'<tr data-metric="{m["name"]}">(.*?)</tr>', html, re.S).group(1)
        assert f"{m['selection']:.6g}" in row and f"{m['random']:.6g}" in row
        if name == "random":  # a random selection is one more draw of its own baseline
            assert abs(m["selection"] - m["random"]) <= 4 * m["random_std"] + 0.02, m


def test_odm_mixture_over_steps(reports):
    doc, html, data = reports["odm"]
    schedule = doc["metrics"]["weight_schedule"]
    assert data["odm"]["steps"] == schedule["steps"] == [1, 2, 3, 4, 5]
    assert data["odm"]["groups"] == schedule["groups"]
    np.testing.assert_allclose(np.sum(data["odm"]["weights"], axis=1), 1.0, atol=1e-6)
    assert "Online mixture weights over steps" in html


def test_texts_target_found_from_the_manifests_own_copy(papers_settings, reports, tmp_path):
    """Issue 16: the CLI report of a CLI selection used to say "target not found"; the manifest now
    keeps its target, and a --target that is not the manifest's is still refused by fingerprint."""
    doc, _, data = reports["dsir"]
    proc = run_cli("manifest", "report", doc["id"][:12], "--out", str(tmp_path / "r.html"), "--json",
                   home=papers_settings.root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["notes"] == []
    kl = {m["name"]: m for m in out["metrics"]}["kl_reduction"]
    assert kl["selection"] == doc["metrics"]["kl_reduction"] and kl["better_than_random"]
    html = (tmp_path / "r.html").read_text()
    assert '<section id="metrics">' in html and embedded_data(html)["header"]["id"] == doc["id"]

    wrong = run_cli("manifest", "report", doc["id"], "--target", str(TARGETS / "multimodal.jsonl"),
                    "--out", str(tmp_path / "w.html"), home=papers_settings.root)  # fmt: skip
    assert wrong.returncode == 2 and "fingerprint" in wrong.stderr and not (tmp_path / "w.html").exists()
