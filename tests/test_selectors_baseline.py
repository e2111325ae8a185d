"""The selector interface, registry, budgets, and the two baselines."""

from __future__ import annotations

import numpy as np
import pytest

from curate.config import Settings
from curate.errors import InputError
from curate.select import run_selection
from curate.selectors.base import REGISTRY, get_selector, parse_budget, parse_params, resolve_budget
from curate.selectors.stratified import largest_remainder


def _ids(doc: dict) -> list[str]:
    import polars as pl

    return pl.read_parquet(f"{doc['path']}/subset.parquet")["id"].to_list()


def test_registry_and_unknown_names_list_valid_ones() -> None:
    assert {"random", "stratified"} <= set(REGISTRY) | {get_selector("random").name}
    with pytest.raises(InputError, match="unknown selector 'nope'; available: .*random.*stratified"):
        get_selector("nope")
    with pytest.raises(InputError, match="unknown parameter 'bogus' for selector 'stratified'; valid parameters: by"):
        parse_params(get_selector("stratified"), {"bogus": 1})
    with pytest.raises(InputError, match="invalid value for parameter 'by'"):
        parse_params(get_selector("stratified"), {"by": "colour"})


def test_budget_parsing_and_resolution() -> None:
    assert parse_budget("100") == 100 and parse_budget("0.25") == 0.25 and parse_budget(1.0) == 1.0
    for bad in ("-1", "1.5", "abc", "0.0", True):
        with pytest.raises(InputError):
            parse_budget(bad)
    assert resolve_budget(0.25, 10) == (2, False)
    assert resolve_budget(50, 10) == (10, True)
    assert resolve_budget(0, 10) == (0, False)


def test_random_is_seeded_distinct_and_clipped(papers_settings: Settings) -> None:
    a = run_selection(papers_settings, pool="papers", selector="random", budget=50, seed=1)
    b = run_selection(papers_settings, pool="papers", selector="random", budget=50, seed=1)
    c = run_selection(papers_settings, pool="papers", selector="random", budget=50, seed=2)
    assert a["id"] == b["id"] and _ids(a) == _ids(b)
    assert len(set(_ids(a))) == 50 and set(_ids(a)) != set(_ids(c))
    everything = run_selection(papers_settings, pool="papers", selector="random", budget=10_000)
    assert everything["budget"]["selected"] == 427 and everything["metrics"]["budget_clipped"] is True
    empty = run_selection(papers_settings, pool="papers", selector="random", budget=0)
    assert empty["budget"]["selected"] == 0


def test_random_is_uniform_over_seeds(settings: Settings, tmp_path) -> None:
    from curate.ingest import IngestParams, ingest

    path = tmp_path / "five.jsonl"
    path.write_text("".join(f'{{"id": "{i}", "text": "record {i}"}}\n' for i in range(5)))
    ingest(settings, path, "five", IngestParams(embed=False))
    from curate.pool import Pool
    from curate.selectors.base import SelectionContext

    pool = Pool.load(settings, "five")
    selector = get_selector("random")(parse_params(get_selector("random"), {}))
    firsts = [selector.select(SelectionContext(pool, 1, seed)).indices[0] for seed in range(3000)]
    freq = np.bincount(firsts, minlength=5) / 3000
    assert np.all(np.abs(freq - 0.2) < 0.03), freq


def test_largest_remainder_is_exact_and_proportional() -> None:
    sizes = np.array([50, 30, 15, 5])
    assert largest_remainder(sizes, 10).tolist() == [5, 3, 2, 0]  # the .5 tie goes to the earlier stratum
    for k in range(0, 101):
        q = largest_remainder(sizes, k)
        assert q.sum() == k and np.all(q <= sizes)
        assert np.all(np.abs(q - sizes * k / sizes.sum()) < 1)


def test_stratified_matches_domain_proportions(papers_settings: Settings) -> None:
    import polars as pl

    from curate.pool import Pool

    doc = run_selection(papers_settings, pool="papers", selector="stratified", budget=0.2, params={"by": "domain"})
    pool_share = Pool.load(papers_settings, "papers").column("domain").value_counts(normalize=True)
    subset = pl.read_parquet(f"{doc['path']}/subset.parquet")
    k = subset.height
    counts = dict(subset["domain"].value_counts().iter_rows())
    for domain, share in pool_share.iter_rows():
        assert abs(counts.get(domain, 0) - share * k) < 1, domain
    assert abs(sum(doc["mixture"].values()) - 1) < 1e-9
    assert doc["metrics"]["domain_counts"] == dict(sorted(counts.items()))


def test_stratified_by_cluster_and_missing_domain(papers_settings: Settings, settings: Settings, tmp_path) -> None:
    doc = run_selection(papers_settings, pool="papers", selector="stratified", budget=80, params={"by": "cluster"})
    assert doc["budget"]["selected"] == 80 and set(doc["mixture"]) <= {str(i) for i in range(8)}
    from curate.ingest import IngestParams, ingest

    path = tmp_path / "nodomain.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    ingest(settings, path, "nd", IngestParams(embed=False))
    with pytest.raises(InputError, match="has no domain field"):
        run_selection(settings, pool="nd", selector="stratified", budget=1, params={"by": "domain"})
    with pytest.raises(InputError, match="has no cluster"):
        run_selection(settings, pool="nd", selector="stratified", budget=1)


def test_target_rules(papers_settings: Settings) -> None:
    with pytest.raises(InputError, match="does not use a target"):
        run_selection(papers_settings, pool="papers", selector="random", budget=5, target="papers")
    with pytest.raises(InputError, match="no pool named 'ghost'"):
        run_selection(papers_settings, pool="ghost", selector="random", budget=5)


def test_a_pool_wins_over_a_file_of_the_same_name_for_every_caller(settings: Settings, tmp_path, monkeypatch) -> None:
    """CLI, pipelines and REST share one precedence rule (curate.target.locate_target)."""
    from curate.ingest import IngestParams, ingest
    from curate.target import locate_target, resolve_target

    monkeypatch.chdir(tmp_path)
    (tmp_path / "src.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    ingest(settings, tmp_path / "src.jsonl", "shadow", IngestParams(embed=False))
    (tmp_path / "shadow").write_text('{"text": "a file named like the pool"}\n')
    pool_id = locate_target(settings, "shadow")
    assert resolve_target(settings, "shadow").kind == "pool"
    refused = []

    def server_check(raw: str):  # what the REST layer passes: files only inside its roots
        refused.append(raw)
        raise InputError("outside the roots", field="target")

    assert locate_target(settings, "shadow", check_path=server_check) == pool_id and not refused
    target = resolve_target(settings, "src.jsonl")
    assert (target.kind, target.n_records, target.path) == ("texts", 2, tmp_path / "src.jsonl")
    with pytest.raises(InputError, match="outside the roots"):
        locate_target(settings, "src.jsonl", check_path=server_check)
    with pytest.raises(InputError, match="neither a pool nor a file"):
        locate_target(settings, "nowhere.jsonl")
