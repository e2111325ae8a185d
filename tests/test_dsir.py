"""DSIR: golden values of ALGORITHMS.md §1.10, parity with data-selection, domain precision, KL reduction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.select import run_selection
from curate.selectors.dsir import gumbel_top_k
from curate.stages.ngrams import NgramParams, featurize
from tests.conftest import REPO, run_cli, write_jsonl

FEDERATED = REPO / "data" / "targets" / "federated.jsonl"


def subset(doc: dict) -> pl.DataFrame:
    return pl.read_parquet(Path(doc["path"]) / "subset.parquet")


@pytest.fixture
def tiny(settings, tmp_path):
    """The §1.10.2 parity case as a pool plus a target file."""
    raw = write_jsonl(
        tmp_path / "raw.jsonl", [{"text": t} for t in ["The cat sat.", "The dog ran!", "Stocks fell sharply."]]
    )
    ingest(settings, raw, "tiny", IngestParams(embed=False))
    return settings, write_jsonl(tmp_path / "target.jsonl", [{"text": "the cat ran"}])


def synthetic_domains(rng: np.random.Generator, docs: int, tokens: int = 100) -> list[dict]:
    """Four domains with disjoint vocabularies (§1.10.4), interleaved so no domain is a file prefix."""
    rows = []
    for i in range(docs):
        d = "abcd"[i % 4]
        words = rng.zipf(1.5, tokens) % 300
        rows.append({"id": f"{d}{i}", "text": " ".join(f"{d}w{w}" for w in words), "domain": d})
    return rows


def test_hash_golden_values():
    counts, n_tokens = featurize(
        pl.Series(["Alice went to the store", "alice", "alice went"]), NgramParams(hash="sha256")
    )
    assert counts[0].sum() == 9 and n_tokens[0] == 5
    assert counts[1].indices.tolist() == [6720]
    assert {6720, 114} <= set(counts[2].indices.tolist()) and counts[2].sum() == 3  # alice, went, alice went


@pytest.mark.parametrize(
    ("laplace", "expected"), [(0.0, [-58.5857, -74.7038, -108.3263]), (1.0, [-42.4705, -42.4705, -43.8567])]
)
def test_reference_golden_log_weights(tiny, laplace, expected):
    settings, target = tiny
    params = {"compat": "reference", "mode": "topk", "target_laplace": laplace}
    doc = run_selection(settings, pool="tiny", selector="dsir", budget=3, params=params, target=str(target))
    got = subset(doc).sort("id")  # ids from text hashes: map back through the pool's own order
    pool_ids = pl.read_parquet(Path(settings.pools_dir).glob("*/records.parquet").__next__())["id"].to_list()
    by_id = dict(zip(got["id"].to_list(), got["score"].to_list(), strict=True))
    assert np.allclose([by_id[i] for i in pool_ids], expected, atol=1e-4)
    assert doc["selector"]["params"]["hash"] == "sha256" and doc["selector"]["params"]["min_length"] == 0


def test_parity_with_data_selection(papers_settings, tmp_path):
    """Our compat scores against the released package on the same 427 abstracts (ALGORITHMS.md §1.10.2)."""
    pytest.importorskip("nltk")
    hashed = pytest.importorskip("data_selection.hashed_ngram_dsir")
    dsir = hashed.HashedNgramDSIR(
        [str(REPO / "data" / "papers.jsonl")],
        [str(FEDERATED)],
        str(tmp_path / "cache"),
        num_proc=1,
        min_example_length=0,
    )
    dsir.fit_importance_estimator(num_tokens_to_fit="all")
    dsir.compute_importance_weights()
    theirs = np.load(tmp_path / "cache" / "log_importance_weights" / "0.npy")
    params = {"compat": "reference", "mode": "topk"}
    doc = run_selection(
        papers_settings, pool="papers", selector="dsir", budget=1.0, params=params, target=str(FEDERATED)
    )
    ids = [json.loads(line)["id"] for line in (REPO / "data" / "papers.jsonl").read_text().splitlines()]
    got = dict(zip(*subset(doc).select("id", "score").to_dict(as_series=False).values(), strict=True))
    ours = np.array([got[i] for i in ids])
    assert spearmanr(ours, theirs).statistic >= 0.99
    assert np.allclose(ours, theirs, rtol=1e-9, atol=1e-6)  # same buckets, same model: same numbers


def test_gumbel_top_k_samples_proportionally():
    log_w = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(0)
    firsts = np.array([gumbel_top_k(log_w + rng.gumbel(size=4), np.arange(4), 1)[0] for _ in range(40_000)])
    freq = np.bincount(firsts, minlength=4) / len(firsts)
    assert np.allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    assert gumbel_top_k(np.array([1.0, 5.0, 5.0, 0.0]), np.arange(4), 2).tolist() == [1, 2]  # ties → smaller id


def test_domain_precision_and_kl_reduction(settings, tmp_path):
    rng = np.random.default_rng(7)
    pool_rows = synthetic_domains(rng, 2000)
    target_rows = [r for r in synthetic_domains(rng, 800) if r["domain"] == "a"]  # 200 held-out domain-a docs
    ingest(settings, write_jsonl(tmp_path / "pool.jsonl", pool_rows), "mix", IngestParams(embed=False))
    target = write_jsonl(tmp_path / "target.jsonl", target_rows)
    doc = run_selection(settings, pool="mix", selector="dsir", budget=0.1, target=str(target), seed=3)
    chosen = subset(doc)
    precision = chosen["domain"].eq("a").mean()
    assert len(chosen) == 200 and precision >= 0.95  # random ≈ 0.25
    m = doc["metrics"]
    assert m["kl_reduction"] > 0 and m["kl_reduction"] > m["kl_reduction_random"] + 0.5
    rand = run_selection(settings, pool="mix", selector="random", budget=0.1, seed=3)
    assert subset(rand)["domain"].eq("a").mean() < 0.4


def test_papers_federated_target(papers_settings):
    doc = run_selection(papers_settings, pool="papers", selector="dsir", budget=30, target=str(FEDERATED), seed=1)
    counts = doc["metrics"]["domain_counts"]
    assert counts.get("federated", 0) >= 25  # 67 of 427 are federated: random would pick ≈ 5
    assert doc["metrics"]["kl_reduction"] > doc["metrics"]["kl_reduction_random"]
    assert doc["metrics"]["mean_tokens_target"] > 0 and doc["metrics"]["mean_tokens_selected"] > 0


def test_determinism_and_seeds(papers_settings):
    # Per-token log w (normalize_length_to=1) is flat enough that the Gumbel noise matters.
    params = {"normalize_length_to": 1}
    runs = [
        run_selection(
            papers_settings, pool="papers", selector="dsir", budget=40, target=str(FEDERATED), seed=s, params=params
        )
        for s in (5, 5, 6)
    ]
    subs = [subset(r) for r in runs]
    assert subs[0]["id"].to_list() == subs[1]["id"].to_list()
    assert set(subs[0]["id"]) != set(subs[2]["id"])
    assert np.all(np.isfinite(subs[0]["score"].to_numpy())) and subs[0]["weight"].to_numpy() == pytest.approx(1.0)
    # Equal-length scoring removes the short-record bias: selected length stays near the target's.
    m = runs[0]["metrics"]
    assert abs(m["mean_tokens_selected"] - m["mean_tokens_target"]) < 0.25 * m["mean_tokens_target"]


def test_budget_edges_and_length_filter(tiny):
    settings, target = tiny
    empty = run_selection(settings, pool="tiny", selector="dsir", budget=0, target=str(target))
    assert empty["budget"]["selected"] == 0
    # min_length 5 leaves no 4-token record eligible; the reference's 100-token default would do the same.
    none = run_selection(
        settings, pool="tiny", selector="dsir", budget=2, target=str(target), params={"min_length": 5}
    )
    assert none["budget"]["selected"] == 0 and none["metrics"]["budget_clipped"] is True
    assert none["metrics"]["filtered_by_length"] == 3
    every = run_selection(
        settings, pool="tiny", selector="dsir", budget=3, target=str(target), params={"mode": "topk"}
    )
    scores = subset(every)["score"].to_numpy()
    assert every["budget"]["selected"] == 3 and np.all(np.diff(scores) <= 0)  # rank = descending log w


def test_importance_weighting_and_quotas(papers_settings):
    params = {"weighting": "importance", "mode": "topk", "clip_percentile": 50}
    doc = run_selection(
        papers_settings, pool="papers", selector="dsir", budget=20, target=str(FEDERATED), params=params
    )
    sub = subset(doc)
    w, s = sub["weight"].to_numpy(), sub["score"].to_numpy()
    assert w.mean() == pytest.approx(1.0) and np.all(np.diff(w) <= 1e-12)  # monotone in log w, clipped on top
    assert np.sum(w == w.max()) >= 10 and s[0] > s[-1]
    quotas = {"domain_quotas": {"federated": 1, "vision": 1}}
    doc = run_selection(
        papers_settings, pool="papers", selector="dsir", budget=10, target=str(FEDERATED), params=quotas
    )
    assert doc["metrics"]["domain_counts"] == {"federated": 5, "vision": 5}


def test_bad_params_and_missing_target(papers_settings):
    with pytest.raises(InputError, match="needs --target"):
        run_selection(papers_settings, pool="papers", selector="dsir", budget=5)
    with pytest.raises(InputError, match="compat"):
        run_selection(
            papers_settings,
            pool="papers",
            selector="dsir",
            budget=5,
            target=str(FEDERATED),
            params={"compat": "reference", "hash": "fast"},
        )
    proc = run_cli(
        "select",
        "--pool",
        "papers",
        "--selector",
        "dsir",
        "--budget",
        "5",
        "--target",
        str(FEDERATED),
        "--param",
        'domain_quotas={"nope": 1}',
        home=papers_settings.home,
    )
    assert proc.returncode == 2 and "domain_quotas" in proc.stderr


def test_raw_fit_budget_samples_rows(papers_settings):
    """A binding raw-fit budget fits on a subset: the first rows (reference) or random rows (ours)."""
    docs = {
        how: run_selection(
            papers_settings,
            pool="papers",
            selector="dsir",
            budget=10,
            target=str(FEDERATED),
            params={"raw_fit_ngrams": 20_000, "raw_fit_sampling": how, "mode": "topk"},
        )
        for how in ("prefix", "random")
    }
    rows = {how: d["metrics"]["raw_fit_rows"] for how, d in docs.items()}
    assert 30 < rows["prefix"] < 60 and 30 < rows["random"] < 60  # ≈ 480 n-grams per abstract
    scores = {how: subset(d)["score"].to_numpy() for how, d in docs.items()}
    assert not np.allclose(scores["prefix"], scores["random"])  # a different raw model, different weights


@pytest.fixture
def two_targets(settings, tmp_path):
    """Pool: the §1.10.4 disjoint domains; target: 150 held-out domain-a docs and 50 domain-b docs,
    labelled by a ``task`` field."""
    rng = np.random.default_rng(11)
    pool = write_jsonl(tmp_path / "pool.jsonl", synthetic_domains(rng, 2000))
    ingest(settings, pool, "mix2", IngestParams(embed=False))
    extra = synthetic_domains(rng, 800)
    rows = [{**r, "task": "ta"} for r in extra if r["domain"] == "a"][:150]
    rows += [{**r, "task": "tb"} for r in extra if r["domain"] == "b"][:50]
    return settings, write_jsonl(tmp_path / "two.jsonl", rows)


def test_separate_targets_one_document_per_target(two_targets):
    """§1.10.8: proportions [0.5, 0.5] and k = 2 → one document per target, disjoint."""
    settings, target = two_targets
    params = {"separate_targets": True, "target_field": "task", "target_proportions": {"ta": 0.5, "tb": 0.5}}
    doc = run_selection(settings, pool="mix2", selector="dsir", budget=2, target=str(target), params=params, seed=1)
    assert sorted(subset(doc)["domain"].to_list()) == ["a", "b"]
    assert doc["metrics"]["target_counts"] == {"ta": 1, "tb": 1}


def test_separate_targets_keep_a_small_target_from_being_swamped(two_targets):
    """Pooled, the 3:1 larger target takes nearly everything (importance compounds per token); one
    model per target with equal proportions splits the budget evenly, each on its own domain."""
    settings, target = two_targets

    def shares(params: dict) -> dict:
        doc = run_selection(settings, pool="mix2", selector="dsir", budget=200, target=str(target), params=params)
        return subset(doc)["domain"].value_counts().to_dict(as_series=False)

    def count(got: dict, d: str) -> int:
        return dict(zip(got["domain"], got["count"], strict=True)).get(d, 0)

    pooled = shares({})
    assert count(pooled, "a") >= 190 and count(pooled, "b") <= 10
    even = shares({"separate_targets": True, "target_field": "task", "target_proportions": {"ta": 1, "tb": 1}})
    assert count(even, "a") >= 95 and count(even, "b") >= 95
    default = shares({"separate_targets": True, "target_field": "task"})  # ∝ n-gram counts: 150 : 50 docs
    assert 140 <= count(default, "a") <= 160 and 40 <= count(default, "b") <= 60


def test_separate_targets_bad_input(two_targets, tmp_path):
    settings, target = two_targets

    def run(params: dict, target=target):
        return run_selection(settings, pool="mix2", selector="dsir", budget=2, target=str(target), params=params)

    separate = {"separate_targets": True, "target_field": "task"}
    with pytest.raises(InputError, match="needs separate_targets"):
        run({"target_proportions": {"ta": 1}})
    with pytest.raises(InputError, match="unknown targets \\['tc'\\]"):
        run({**separate, "target_proportions": {"tc": 1}})
    with pytest.raises(InputError, match="need a 'topic' field") as err:
        run({**separate, "target_field": "topic"})
    assert err.value.file == str(target)
    holes = write_jsonl(tmp_path / "holes.jsonl", [{"text": "aw1 aw2", "task": "ta"}, {"text": "bw1 bw2"}])
    with pytest.raises(InputError, match="without a label") as err:
        run(separate, target=holes)
    assert err.value.line == 2 and err.value.field == "task"
