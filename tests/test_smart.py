"""SMART: §5.9 budget rules, redundancy-aware mixtures, the papers pool end to end."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from curate.config import Settings
from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.select import run_selection
from curate.selectors.smart import budget_split, repair_capacity, taylor_softmax


def test_stage_one_golden_budgets():
    """§5.9.2: round-robin leftovers from the first task, not largest remainder."""
    probs = taylor_softmax(np.array([6.2906, 5.2935, 4.5041]))
    np.testing.assert_allclose(probs, [0.4296, 0.3221, 0.2483], atol=1e-4)
    assert budget_split(100, probs).tolist() == [43, 33, 24]
    assert budget_split(10, np.full(3, 1 / 3)).tolist() == [4, 3, 3]
    assert budget_split(7, np.array([0.5, 0.25, 0.25])).tolist() == [4, 2, 1]
    np.testing.assert_allclose(taylor_softmax(np.array([2.0, 1.0, 0.0])), [0.5882, 0.2941, 0.1176], atol=1e-4)


def test_capacity_repair_sums_exactly_and_respects_sizes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        cap = rng.integers(0, 30, n)
        total = int(rng.integers(0, cap.sum() + 1))
        b = repair_capacity(budget_split(total, rng.random(n) + 0.01), cap)
        assert b.sum() == total and (b <= cap).all() and (b >= 0).all()
    assert repair_capacity(np.array([50, 30, 20]), np.array([10, 100, 15])).tolist() == [10, 75, 15]
    with pytest.raises(InputError):
        repair_capacity(np.array([5, 5]), np.array([3, 3]))


def _task_pool(tmp_path, settings: Settings) -> None:
    """Six tasks of 40 records with their own vectors: dup_a and dup_b are near-identical, the
    four others are independent directions."""
    rng = np.random.default_rng(1)
    dirs = {f"task_{i}": rng.normal(size=32) for i in range(4)}
    dirs["dup_a"] = rng.normal(size=32)
    dirs["dup_b"] = dirs["dup_a"] + 0.05 * rng.normal(size=32)
    rows = []
    for name, d in dirs.items():
        for j in range(40):
            vec = d + 0.3 * rng.normal(size=32)
            rows.append({"id": f"{name}-{j}", "text": f"{name} record {j}", "domain": name, "vec": vec.tolist()})
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest(settings, path, "tasks", IngestParams(domain_field="domain", embedding_field="vec", clusters=0))


def test_redundant_tasks_share_a_budget(tmp_path, settings):
    _task_pool(tmp_path, settings)
    doc = run_selection(settings, pool="tasks", selector="smart", budget=120)
    b = doc["metrics"]["task_budgets"]
    assert sum(b.values()) == 120 and doc["budget"]["selected"] == 120
    assert sum(doc["mixture"].values()) == pytest.approx(1.0)
    distinct = [b[f"task_{i}"] for i in range(4)]
    family = b["dup_a"] + b["dup_b"]
    assert family <= 1.25 * np.mean(distinct)  # proportional or equal mixing would give it 2×
    assert min(b["dup_a"], b["dup_b"]) < 0.25 * min(distinct)
    subset = pl.read_parquet(f"{doc['path']}/subset.parquet")
    assert subset["weight"].mean() == pytest.approx(1.0)
    assert subset["id"].n_unique() == 120
    # the reference configuration (graph cut, raw gains) favours the dense family instead (§5.8)
    ref = run_selection(settings, pool="tasks", selector="smart", budget=120, params={"compat": "reference"})
    rb = ref["metrics"]["task_budgets"]
    assert rb["dup_a"] + rb["dup_b"] > family


def test_large_tasks_use_sparse_kernel_and_stochastic_greedy(tmp_path, settings):
    _task_pool(tmp_path, settings)
    params = {"dense_max": 10, "knn": 8, "num_tasks": 4}
    doc = run_selection(settings, pool="tasks", selector="smart", budget=100, params=params)
    assert doc["budget"]["selected"] == 100
    assert len(doc["metrics"]["task_budgets"]) == 4  # pruned to the top-4 tasks
    with pytest.raises(InputError, match="fewer than the budget"):
        run_selection(settings, pool="tasks", selector="smart", budget=200, params={"num_tasks": 2})


def test_papers_pool_mixture_and_non_redundant_records(papers_settings):
    doc = run_selection(papers_settings, pool="papers", selector="smart", budget=100)
    assert doc["budget"]["selected"] == 100
    mix = doc["mixture"]
    assert sum(mix.values()) == pytest.approx(1.0) and len(mix) == 10
    assert mix == {k: v / 100 for k, v in doc["metrics"]["task_budgets"].items()}
    assert doc["metrics"]["domain_counts"] == doc["metrics"]["task_budgets"]
    # within a task, the records cover it better (facility location) than random ones of equal count
    pool = Pool.load(papers_settings, "papers")
    records = pool.scan().select("row_id", "id", "domain").collect()
    subset = pl.read_parquet(f"{doc['path']}/subset.parquet").join(records.select("row_id", "id"), on="id")
    emb = np.asarray(pool.embeddings(), np.float64)
    task = records.filter(pl.col("domain") == "other")["row_id"].to_numpy()
    chosen = subset.filter(pl.col("domain") == "other")["row_id"].to_numpy()
    kernel = np.maximum(emb[task] @ emb.T, 0)

    def cover(rows):
        return kernel[:, rows].max(axis=1).sum()

    rng = np.random.default_rng(0)
    assert cover(chosen) > max(cover(rng.choice(task, len(chosen), replace=False)) for _ in range(10))
