"""Issue 5 evidence: on a multimodal real-text target, `tarot`'s selection is closer in OT to a held-out
target sample than random, `dsir` and nearest-neighbour top-k of the same size, and covers every mode.

Pool: 8 template domains × 30 texts embedded by the real model (tests/multidomain.py); target:
software/medical/astronomy at 60/30/10 %, 30 texts to select with (the `--target`), 60 held out.
Budget: the paper's selection ratio 0.2 of the pool (48). The metric is TAROT's own (whitened
chord cost, exact EMD); benchmarks/tarot_baselines.py reports the same over 3 seeds and 4 budgets.
"""

from __future__ import annotations

import pytest

from curate.ingest import IngestParams, ingest
from tests.multidomain import compare, write_fixture

BUDGET = 48  # int(0.2 · 240): the reference's example selection ratio


@pytest.fixture(scope="module")
def result(tmp_path_factory, shared_embedding_cache):
    from curate.config import Settings

    tmp = tmp_path_factory.mktemp("multidomain")
    fx = write_fixture(tmp / "data", seed=0)
    settings = Settings(home=tmp / "home")
    ingest(settings, fx.pool_path, "multidomain", IngestParams(embed=True, clusters=0))
    return fx, compare(settings, fx, [BUDGET], seed=0)[str(BUDGET)]


def test_tarot_is_closest_to_the_held_out_target(result):
    _, res = result
    ot = {name: r["ot"] for name, r in res.items()}
    assert all(r["n"] == BUDGET for r in res.values())
    for baseline in ("random", "nn_round_robin", "nn_max_sim"):
        assert ot["tarot"] < ot[baseline], ot
    # DSIR's n-gram model is close to the true generator of templated text, so it is the nearest
    # rival: over seeds 0/1/2 tarot is lower by 0.017 / −0.003 / 0.019 in TAROT's whitened metric
    # (benchmarks/tarot_baselines.py), lower in raw embedding space in all three. Asserted as such.
    assert ot["tarot"] < ot["dsir"] + 0.005, ot
    assert res["tarot"]["ot_raw"] < res["dsir"]["ot_raw"], {n: r["ot_raw"] for n, r in res.items()}


def test_tarot_covers_every_target_mode_in_proportion(result):
    fx, res = result
    tarot = res["tarot"]
    assert tarot["off_target"] == 0
    for domain, share in fx.shares.items():
        got = tarot["target_domains"][domain] / BUDGET
        assert got > 0 and abs(got - share) <= 0.1, tarot["target_domains"]
