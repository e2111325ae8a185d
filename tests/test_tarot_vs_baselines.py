"""Issue 5 evidence: on a multimodal real-text target, `tarot`'s selection is closer in OT to a held-out
target sample than random, `dsir` and nearest-neighbour top-k of the same size, and covers every mode.

Pool: 8 template domains × 400 texts embedded by the real model (tests/multidomain.py), so that, as in
the product's setting, the pool holds far more target-like records than the budget; target:
software/medical/astronomy at 60/30/10 %, 100 texts to select with (the `--target`), 200 held out.
Budget 200 (twice the target, 6 % of the pool). The metric is TAROT's own (whitened chord cost, exact
EMD), with the raw-embedding value checked beside it. benchmarks/tarot_baselines.py reports 3 seeds ×
5 budgets, including the paper's ratio 0.2 (640 = over half of all target-domain records), where
DSIR and a round-robin per-target NN (RDS+-style, not a top-k) tie or beat tarot.
"""

from __future__ import annotations

import pytest

from curate.ingest import IngestParams, ingest
from tests.multidomain import compare, write_fixture

BUDGET = 200
TOP_K = ("nn_max_sim", "nn_max_sim_whitened")  # top-k by similarity to the nearest target example


@pytest.fixture(scope="module")
def result(tmp_path_factory, shared_embedding_cache):
    from curate.config import Settings

    tmp = tmp_path_factory.mktemp("multidomain")
    fx = write_fixture(tmp / "data", per_domain=400, n_fit=100, n_held=200, seed=0)
    settings = Settings(home=tmp / "home")
    ingest(settings, fx.pool_path, "multidomain", IngestParams(embed=True, clusters=0))
    return fx, compare(settings, fx, [BUDGET], seed=0)[str(BUDGET)]


def test_tarot_is_closest_to_the_held_out_target(result):
    _, res = result
    assert all(r["n"] == BUDGET for r in res.values())
    for metric in ("ot", "ot_raw"):
        got = {name: r[metric] for name, r in res.items()}
        for baseline in ("random", "dsir", *TOP_K):
            assert got["tarot"] < got[baseline], (metric, got)


def test_tarot_covers_every_target_mode_in_proportion(result):
    fx, res = result
    tarot = res["tarot"]
    assert tarot["off_target"] == 0
    for domain, share in fx.shares.items():
        got = tarot["target_domains"][domain] / BUDGET
        assert got > 0 and abs(got - share) <= 0.1, tarot["target_domains"]

    def share_error(r: dict) -> float:  # total variation between selected and target domain shares
        gaps = sum(abs(r["target_domains"][d] / BUDGET - s) for d, s in fx.shares.items())
        return (gaps + r["off_target"] / BUDGET) / 2

    # the failure TAROT targets: top-k by similarity serves the modes out of proportion
    for baseline in TOP_K:
        assert share_error(tarot) < share_error(res[baseline]), {n: r["target_domains"] for n, r in res.items()}
