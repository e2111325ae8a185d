"""Downstream eval: a proxy LM trained on a subset, scored on the target, beside random subsets.

The property only a working eval has: on real multi-domain text (Debian package descriptions by
archive section), training on the target section's own records gives a lower loss on held-out texts
of that section than random subsets of the same size, and training on another section gives a higher
one. Then the manifest path end to end: ``curate eval`` (exit codes included), the REST job route of a
real ``curate serve``, and the report section.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from curate.errors import InputError
from curate.eval import EvalParams, evaluate_rows
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.select import run_selection
from tests.apiserver import LiveServer, wait_job
from tests.conftest import REPO, run_cli
from tests.realtext import corpus, write_jsonl
from tests.test_report import embedded_data

TARGET_DOMAIN, FAR_DOMAIN = "python", "perl"  # the far one: perl module descriptions
FEDERATED = REPO / "data" / "targets" / "federated.jsonl"


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    """A 6-section pool (n-grams only) and held-out texts of one section that are not in the pool."""
    from curate.config import Settings

    df = corpus("debian", n_domains=6, per_domain=260, seed=3)
    held = df.filter(pl.col("domain") == TARGET_DOMAIN).sample(60, seed=0)  # a held-out split
    root = tmp_path_factory.mktemp("eval-debian")
    settings = Settings(home=root / "home")
    ingest(settings, write_jsonl(df.join(held, on="id", how="anti"), root / "pool.jsonl"), "debian",
           IngestParams(embed=False, clusters=0))  # fmt: skip
    return Pool.load(settings, "debian"), held["text"].to_list()


def _rows_of(pool: Pool, domain: str) -> np.ndarray:
    return np.flatnonzero(pool.column("domain").to_numpy() == domain)


def test_target_domain_beats_random_and_another_domain_does_not(debian):
    pool, held = debian
    assert TARGET_DOMAIN in set(pool.column("domain").to_list())
    params = EvalParams()
    own = evaluate_rows(pool, _rows_of(pool, TARGET_DOMAIN), None, held, params)
    assert own["better_than_random"], own
    assert own["delta"]["ci"][1] < 0 and own["delta"]["perplexity_ratio"] < 0.9
    assert own["random"]["losses"] and len(own["random"]["losses"]) == params.random_seeds
    assert own["selection"]["ci"][0] <= own["selection"]["loss"] <= own["selection"]["ci"][1]
    away = evaluate_rows(pool, _rows_of(pool, FAR_DOMAIN)[: len(_rows_of(pool, TARGET_DOMAIN))], None, held, params)
    assert not away["better_than_random"] and away["delta"]["ci"][0] > 0, away["delta"]
    assert own["train"]["records"] == away["train"]["records"] == len(_rows_of(pool, TARGET_DOMAIN))


def test_weights_are_honoured(debian):
    """Same records, same total weight: leaning toward the target section's half beats leaning away;
    a zero weight is the same as leaving the record out."""
    pool, held = debian
    own, far = _rows_of(pool, TARGET_DOMAIN)[:120], _rows_of(pool, FAR_DOMAIN)[:120]
    rows = np.concatenate([own, far])
    lean = np.concatenate([np.full(120, 1.8), np.full(120, 0.2)])
    toward = evaluate_rows(pool, rows, lean, held, EvalParams())
    away = evaluate_rows(pool, rows, lean[::-1].copy(), held, EvalParams())
    assert away["selection"]["loss"] - toward["selection"]["loss"] > 0.1, (toward["selection"], away["selection"])
    assert toward["random"]["losses"] == away["random"]["losses"]  # random subsets are unweighted either way
    zero = np.concatenate([np.ones(120), np.zeros(120)])
    dropped = evaluate_rows(pool, rows, zero, held, EvalParams())["selection"]["loss"]
    alone = evaluate_rows(pool, own, None, held, EvalParams())["selection"]["loss"]
    assert dropped == pytest.approx(alone, abs=1e-9)
    flat = evaluate_rows(pool, rows, zero, held, EvalParams(weighted=False))["selection"]["loss"]
    assert flat != pytest.approx(dropped, abs=1e-3)  # weighted=False ignores them


def test_target_texts_in_the_pool_are_not_trained_on(papers_settings):
    """papers.jsonl holds the 30 federated target texts: a subset of them would score by memorising."""
    pool = Pool.load(papers_settings, "papers")
    texts = [json.loads(line)["text"] for line in FEDERATED.read_text().splitlines()]
    copies = np.flatnonzero(pool.column("text").is_in(texts).to_numpy())
    assert len(copies) == 30
    with pytest.raises(InputError, match="no selected record is left"):
        evaluate_rows(pool, copies, None, texts, EvalParams())
    leaky = evaluate_rows(pool, copies, None, texts, EvalParams(decontaminate=False))
    assert leaky["selection"]["perplexity"] < 5  # memorised: why decontamination is on


@pytest.fixture(scope="module")
def dsir_manifest(papers_settings) -> dict:
    return run_selection(papers_settings, pool="papers", selector="dsir", budget=60, params={}, seed=2,
                         target=str(FEDERATED))  # fmt: skip


def test_cli_eval(papers_settings, dsir_manifest):
    home = papers_settings.root
    proc = run_cli("eval", dsir_manifest["id"][:10], "--json", home=home, check=True)
    result = json.loads(proc.stdout)
    assert result["manifest"]["id"] == dsir_manifest["id"]
    assert result["target"]["fingerprint"] == dsir_manifest["target"]["fingerprint"]
    assert not result["target"]["held_out"] and "note" in result  # scored on what it aimed at: said so
    assert result["train"]["removed_as_target_texts"] > 0  # dsir picks the target's own copies in the pool
    assert len(result["random"]["losses"]) == EvalParams().random_seeds and result["params"]["proxy"] == "ngram"
    human = run_cli("eval", dsir_manifest["id"], home=home, check=True).stdout
    assert "selection: loss" in human and f"random x{EvalParams().random_seeds}" in human

    bad = run_cli("eval", dsir_manifest["id"], "--param", "order=9", home=home)
    assert bad.returncode == 2 and "--order" in bad.stderr
    bad = run_cli("eval", dsir_manifest["id"], "--param", "ordre=2", home=home)
    assert bad.returncode == 2 and "unknown eval parameter 'ordre'" in bad.stderr
    bad = run_cli("eval", dsir_manifest["id"], "--random-seeds", "2", home=home)
    assert bad.returncode == 2 and "--random-seeds" in bad.stderr
    assert run_cli("eval", "ffffffffff", home=home).returncode == 2
    plain = run_selection(papers_settings, pool="papers", selector="random", budget=40, params={}, seed=1)
    bad = run_cli("eval", plain["id"], home=home)
    assert bad.returncode == 2 and "has no target: pass --target" in bad.stderr
    bad = run_cli("eval", plain["id"], "--target", str(REPO / "nope.jsonl"), home=home)
    assert bad.returncode == 2 and "neither a pool nor a file" in bad.stderr
    given = json.loads(
        run_cli("eval", plain["id"], "--target", str(FEDERATED), "--json", home=home, check=True).stdout
    )
    assert given["target"]["held_out"] and not given["better_than_random"]  # random vs random: no gain


def test_rest_eval_job_and_report(papers_settings, dsir_manifest):
    env = {"CURATE_API_TOKENS": "rw:read,write;ro:read", "CURATE_POOL_ROOTS": str(REPO / "data")}
    server = LiveServer(papers_settings.root, workers=1, env=env, token="ro").start()
    try:
        ro = server.client()
        mid = dsir_manifest["id"]
        r = ro.get(f"/v1/manifests/{mid[:12]}/eval", params={"random_seeds": 4, "order": 2})
        assert r.status_code == 202, r.text
        job = wait_job(ro, r.json()["id"])
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["params"]["random_seeds"] == 4 and len(result["random"]["losses"]) == 4
        assert result["manifest"]["id"] == mid and "source" not in result["target"]
        assert result["delta"]["loss"] == pytest.approx(
            result["selection"]["loss"] - result["random"]["loss"], abs=1e-5
        )
        again = ro.get(f"/v1/manifests/{mid}/eval", params={"order": 2, "random_seeds": 4})
        assert again.status_code == 200 and again.json()["id"] == job["id"]  # one job per request, reused

        held = ro.get(f"/v1/manifests/{mid}/eval", params={"target": str(FEDERATED)})
        assert held.status_code == 202
        assert wait_job(ro, held.json()["id"])["status"] == "succeeded"
        for query, status in [({"order": 9}, 422), ({"ordre": 2}, 422), ({"target": "/etc/passwd"}, 403)]:
            bad = ro.get(f"/v1/manifests/{mid}/eval", params=query)
            assert bad.status_code == status and "error" in bad.json(), (query, bad.text)
        assert ro.get("/v1/manifests/ffffffffffff/eval").status_code == 404
        assert server.client("nope").get(f"/v1/manifests/{mid}/eval").status_code == 401

        data = embedded_data(ro.get(f"/v1/manifests/{mid}/report").text)
        shown = {(e["params"]["order"], e["params"]["random_seeds"]) for e in data["evals"]}
        assert (2, 4) in shown and (3, EvalParams().random_seeds) in shown  # the REST eval and the CLI's
    finally:
        server.stop()
