"""CCS: water-filling golden values (ALGORITHMS.md §3.10), cutoff, strata, coverage, probe accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.metrics import mean_nn_distance
from curate.select import run_selection
from curate.selectors.coverage import ccs_select, default_beta, el2n_probe_scores, water_fill
from tests.conftest import write_jsonl


def test_water_filling_golden():
    assert water_fill(np.array([5, 100, 3, 50]), 40).tolist() == [5, 16, 3, 16]
    assert water_fill(np.array([0, 0, 4, 100]), 10).tolist() == [0, 0, 4, 6]
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(0, 30, rng.integers(1, 12))
        m = int(rng.integers(0, 200))
        out = water_fill(sizes, m)
        assert out.sum() == min(m, sizes.sum()) and np.all(out <= sizes)


def test_cutoff_never_selected():
    rng = np.random.default_rng(1)
    s = rng.normal(size=1000)
    res = ccs_select(s, 100, 0.2, 50, rng)
    assert len(res.cut) == 200 and set(res.cut) == set(np.argsort(-s)[:200])
    assert not set(res.chosen) & set(res.cut) and len(res.chosen) == 100
    assert res.budgets.sum() == 100 and np.all(res.budgets <= res.sizes)


def test_one_stratum_is_uniform_over_the_kept_set():
    s = np.arange(20, dtype=float)  # distinct; β = 0.25 cuts rows 15..19 (hard = high)
    hits = np.zeros(20)
    for seed in range(3000):
        hits[ccs_select(s, 5, 0.25, 1, np.random.default_rng(seed)).chosen] += 1
    freq = hits / 3000
    assert np.all(freq[15:] == 0) and np.allclose(freq[:15], 5 / 15, atol=0.04)


def test_reference_upper_edge_bug_only_in_compat():
    s = -np.arange(1.0, 11.0)  # all negative: 1.0001·max < max, so the reference drops the argmax
    ref = ccs_select(s, 10, 0.0, 3, np.random.default_rng(0), compat="reference")
    ours = ccs_select(s, 10, 0.0, 3, np.random.default_rng(0))
    assert 0 not in ref.chosen and len(ref.chosen) == 9
    assert 0 in ours.chosen and len(ours.chosen) == 10


def test_strata_flatten_a_skewed_score_histogram():
    rng = np.random.default_rng(2)
    s = rng.exponential(size=20_000)
    res = ccs_select(s, 1000, 0.0, 20, rng)
    edges = np.linspace(res.edges[0], res.edges[1], 21)
    ccs_counts = np.histogram(s[res.chosen], edges)[0]
    rnd_counts = np.histogram(s[rng.choice(len(s), 1000, replace=False)], edges)[0]
    cv = lambda c: c.std() / c.mean()  # noqa: E731
    assert cv(ccs_counts) < 0.5 * cv(rnd_counts)


def test_coverage_beats_hardest_first_on_two_blobs():
    """§3.10.6: hardness = closeness to the boundary; CCS covers, top-hard does not (10/10 seeds)."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x = np.vstack([rng.normal((-2, 0), 1, (5000, 2)), rng.normal((2, 0), 1, (5000, 2))]).astype(np.float32)
        hardness = -np.abs(x[:, 0])
        ccs = mean_nn_distance(x, ccs_select(hardness, 1000, 0.1, 50, rng).chosen)
        top = mean_nn_distance(x, np.argsort(-hardness)[:1000])
        rnd = mean_nn_distance(x, rng.choice(10_000, 1000, replace=False))
        assert ccs < top / 4 and ccs < 2 * rnd


def test_probe_on_coreset_matches_random_and_beats_hardest_first():
    """90 % pruning on labelled data, 5 seeds: CCS (β = 0.1) ≥ random − noise, ≫ hardest-first."""
    x, y = make_classification(
        n_samples=3000, n_features=16, n_informative=8, n_classes=4, flip_y=0.1, class_sep=1.0, random_state=0
    )
    train, test = np.arange(2500), np.arange(2500, 3000)
    s = el2n_probe_scores(x[train], y[train], 5, 1.0, 0)
    acc = {"random": [], "ccs": [], "hard": []}

    def fit(idx):
        return LogisticRegression(max_iter=300).fit(x[train][idx], y[train][idx]).score(x[test], y[test])

    for seed in range(5):
        rng = np.random.default_rng(seed)
        acc["random"].append(fit(rng.choice(2500, 250, replace=False)))
        acc["ccs"].append(fit(ccs_select(s, 250, 0.1, 50, rng).chosen))
        acc["hard"].append(fit(np.argsort(-s)[:250]))
    mean = {k: float(np.mean(v)) for k, v in acc.items()}
    noise = 2 * float(np.std(acc["random"]) + np.std(acc["ccs"])) / np.sqrt(5)
    assert mean["ccs"] >= mean["random"] - max(noise, 0.02), mean
    assert mean["ccs"] >= mean["hard"] + 0.2, mean


def test_default_beta_schedule():
    assert default_beta(0.5) == 0.0 and default_beta(0.8) == 0.1 and default_beta(0.9) == 0.2


def test_selector_on_papers_prototypicality(papers_settings):
    doc = run_selection(
        papers_settings, pool="papers", selector="coverage", budget=0.1, seed=4, params={"score": "prototypicality"}
    )
    m = doc["metrics"]
    sub = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    beta = default_beta(1 - 42 / 427)
    assert len(sub) == 42 and sum(m["stratum_counts"]) == 42 and m["beta"] == beta and m["cut"] == int(beta * 427)
    assert m["coverage"] > 0 and m["coverage_random"] > 0 and m["quality"]["coverage"]["better"] == "lower"
    assert sub["weight"].to_numpy() == pytest.approx(1.0) and sub["score"].null_count() == 0
    el2n = run_selection(
        papers_settings,
        pool="papers",
        selector="coverage",
        budget=0.2,
        params={"score": "el2n_probe", "probe_folds": 3},
    )
    assert el2n["budget"]["selected"] == 85 and el2n["metrics"]["beta"] == default_beta(1 - 85 / 427)
    auto = run_selection(papers_settings, pool="papers", selector="coverage", budget=0.1, seed=4)
    assert auto["metrics"]["score"] == "el2n_probe"  # the pool has topics: auto uses the label-aware score


def test_score_column_from_meta(settings, tmp_path):
    rng = np.random.default_rng(3)
    rows = [{"id": str(i), "text": f"record {i}", "loss": float(v)} for i, v in enumerate(rng.exponential(size=300))]
    ingest(settings, write_jsonl(tmp_path / "p.jsonl", rows), "losses", IngestParams(embed=False))
    doc = run_selection(
        settings, pool="losses", selector="coverage", budget=30, params={"score_column": "loss", "beta": 0.1}
    )
    sub = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    losses = {r["id"]: r["loss"] for r in rows}
    cutoff = np.sort([r["loss"] for r in rows])[-30]  # the 30 highest losses are cut
    assert all(losses[i] < cutoff for i in sub["id"]) and np.allclose(sub["score"], [losses[i] for i in sub["id"]])
    assert doc["selector"]["params"]["score"] == "column"
    with pytest.raises(InputError, match="not a finite number") as err:
        run_selection(settings, pool="losses", selector="coverage", budget=30, params={"score_column": "text_len"})
    assert err.value.field == "text_len"
