"""Issue 12: on real short text (Debian package descriptions, 12 sections, MiniLM), `tarot` gives
every mode of a multimodal target its share and stays closer in OT to a held-out target sample
than random and dsir, on 3 seeds.

One set of ~2.9k texts is embedded once; each seed re-splits it into pool, fit target and held-out
target (tests/tarot_realtext.py). Targets: rust / javascript / haskell, even (sections mostly
recognisable by their words), and python / devel / libs at 60/30/10 (sections that overlap:
"devel" and "libs" packages share descriptions with their "python"/"libdevel" siblings).

Mode shares are measured by Section label, and the labels overlap: even a point-by-point mirror
of the held-out target (each of its records' nearest pool record) gets, e.g., 0.21-0.30 of
haskell for a 1/3 haskell target, 0.34-0.40 of python for a 0.6 one. So each mode must be within
10 pp of that mirror's share, the most the labels allow; the pre-fix default (full whitening)
falls 13-20 pp short of it on the dominant python mode. Budget: twice the fit target.
benchmarks/tarot_realtext.py runs 5 targets x 3 budgets x 3 seeds at 3x this size.
"""

from __future__ import annotations

import pytest

from tests.tarot_realtext import TARGETS, build_split, run_methods

SEEDS = (0, 1, 2)
N_FIT, N_HELD, PER_DOMAIN = 60, 90, 150
BUDGET = 2 * N_FIT
DISTINCT = next(t for t in TARGETS if t.name == "even_distinct")
OVERLAPPING = next(t for t in TARGETS if t.name == "mix_60_30_10_overlapping")


@pytest.fixture(scope="module")
def results(tmp_path_factory, shared_embedding_cache) -> dict:
    out = {}
    for seed in SEEDS:
        split = build_split(
            tmp_path_factory.mktemp(f"debian-{seed}"), seed, (DISTINCT, OVERLAPPING),
            per_domain=PER_DOMAIN, n_fit=N_FIT, n_held=N_HELD, corpus_seed=0,
        )  # fmt: skip
        for target in (DISTINCT, OVERLAPPING):
            out[seed, target.name] = run_methods(split, target, BUDGET, seed)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("target", [DISTINCT.name, OVERLAPPING.name])
def test_every_mode_gets_its_share(results, seed, target):
    res = results[seed, target]
    got, mirror = res["methods"]["tarot"]["shares"], res["ceiling_shares"]
    for domain in got:
        assert abs(got[domain] - mirror[domain]) <= 0.10, (seed, got, mirror)


@pytest.mark.parametrize("target", [DISTINCT.name, OVERLAPPING.name])
def test_closer_to_the_held_out_target_than_random_and_dsir(results, target):
    """In raw MiniLM space and in the paper's (fully whitened) metric: every seed vs random, the
    seed mean vs dsir (per-seed gaps to dsir are a few thousandths in the whitened metric)."""
    runs = [results[seed, target]["methods"] for seed in SEEDS]
    for metric in ("ot_raw", "ot"):
        for m in runs:
            assert m["tarot"][metric] < m["random"][metric], (metric, m)
        mean = {name: sum(m[name][metric] for m in runs) / len(runs) for name in ("tarot", "dsir")}
        assert mean["tarot"] < mean["dsir"], (metric, mean)


def test_shares_beat_top_k_nearest_neighbours(results):
    """The failure TAROT exists to prevent: top-k by similarity to any target example serves the
    modes out of proportion (on rust/javascript/haskell it takes mostly rust)."""
    for seed in SEEDS:
        m = results[seed, DISTINCT.name]["methods"]
        assert m["tarot"]["max_share_gap"] < m["top_k_nn"]["max_share_gap"], (seed, m)
