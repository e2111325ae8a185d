"""Issue 12: on real short text (Debian package descriptions, 12 sections), curate's `dsir` at its
defaults reaches at least 0.98x the KL reduction of the `data-selection` package on the same split
and budget, with at least its precision, on 3 seeds (tests/dsir_realtext.py).

KL reduction is measured toward the target's held-out texts in a neutral hashed space (keyed
blake2b, 10k buckets), where neither selector fitted anything. In the package's own sha256 buckets
toward the very texts it fitted, the package leads at small budgets (its λ = 0 model spends all of
its mass on the fit texts' exact buckets): that figure is recorded beside, not asserted.
benchmarks/quality.py runs the same at 2.3x this size, 2 budgets, with variants.
"""

from __future__ import annotations

import pytest

from tests.dsir_realtext import TARGETS, build_split, run_methods

pytest.importorskip("data_selection")

SEEDS = (0, 1, 2)
PER_DOMAIN, N_FIT, N_HELD, BUDGET = 1000, 200, 300, 1500


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = {}
    for seed in SEEDS:
        split = build_split(tmp_path_factory.mktemp(f"dsir-{seed}"), seed, per_domain=PER_DOMAIN, n_fit=N_FIT,
                            n_held=N_HELD)  # fmt: skip
        for target in TARGETS:
            out[seed, target.name] = run_methods(split, target, BUDGET, seed)
    return out


def _mean(results: dict, target: str, method: str, metric: str) -> float:
    return sum(results[s, target][method][metric] for s in SEEDS) / len(SEEDS)


@pytest.mark.parametrize("target", [t.name for t in TARGETS])
def test_kl_reduction_at_least_the_reference(results, target):
    ours, ref = _mean(results, target, "dsir", "kl_neutral"), _mean(results, target, "reference", "kl_neutral")
    assert ours >= ref - 0.02 * abs(ref), (ours, ref, [results[s, target] for s in SEEDS])


@pytest.mark.parametrize("target", [t.name for t in TARGETS])
def test_precision_at_least_the_reference(results, target):
    """Seed means (on the libs/utils/doc mix the two are within a point of each other per seed)."""
    ours, ref = _mean(results, target, "dsir", "precision"), _mean(results, target, "reference", "precision")
    assert ours >= ref, (ours, ref)
    for seed in SEEDS:
        m = results[seed, target]
        assert m["dsir"]["precision"] > 2 * m["random"]["precision"], (seed, m)


def test_single_section_targets_beat_random(results):
    """Where the target is one section, both selections move the pool toward it; random does not."""
    for target in ("haskell", "python"):
        for seed in SEEDS:
            m = results[seed, target]
            assert m["dsir"]["kl_neutral"] > m["random"]["kl_neutral"] + 0.02, (seed, m)
