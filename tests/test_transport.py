"""Whitening, chord cost and OT wrapper (ALGORITHMS.md §2.10 tests 1–3)."""

from __future__ import annotations

import numpy as np
import pytest

from curate.algorithms.transport import chord_cost, fit_whitener, ot_distance, ot_potentials, transported_mass


@pytest.fixture(scope="module")
def anisotropic() -> np.ndarray:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(12, 12))
    return rng.normal(size=(3000, 12)) @ mix * np.linspace(0.1, 8, 12)


def test_whitened_covariance_is_identity(anisotropic):
    w = fit_whitener([anisotropic[:2000], anisotropic[2000:]], "cholesky", shrinkage=0.0, ridge=0.0)
    z = w.transform(anisotropic, normalize=False).astype(np.float64)
    assert np.abs(np.cov(z.T, bias=True) - np.eye(12)).max() < 1e-4
    assert w.condition > 100  # the raw covariance really was ill-conditioned


def test_zca_and_cholesky_give_the_same_cosines_none_does_not(anisotropic):
    cos = {}
    for method in ("cholesky", "zca", "none"):
        u = fit_whitener([anisotropic], method, shrinkage=0.0).transform(anisotropic[:300]).astype(np.float64)
        cos[method] = u @ u.T
    assert np.abs(cos["cholesky"] - cos["zca"]).max() < 1e-5  # float32 storage; 1e-10 in float64
    assert np.abs(cos["cholesky"] - cos["none"]).max() > 0.1


def test_ledoit_wolf_shrinkage_matches_sklearn(anisotropic):
    from sklearn.covariance import ledoit_wolf_shrinkage

    w = fit_whitener([anisotropic[:100]], shrinkage="auto")  # streamed moments, two blocks below
    w2 = fit_whitener([anisotropic[:40], anisotropic[40:100]], shrinkage="auto")
    assert w.shrinkage == pytest.approx(ledoit_wolf_shrinkage(anisotropic[:100]), rel=1e-9)
    assert w2.shrinkage == pytest.approx(w.shrinkage, rel=1e-12)


def test_chord_cost_properties():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(50, 8))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    c = chord_cost(u, u)
    np.testing.assert_allclose(c, c.T, atol=1e-12)
    assert np.abs(np.diag(c)).max() < 1e-6
    assert c.min() >= 0 and c.max() <= 2


def _clouds():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(150, 16)) + 0.3
    return a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)


def test_ot_backends_agree_with_golden_value():
    """§2.10.3: emd2 = 0.94653; log-domain Sinkhorn at reg 1e-2 within 1.3e-3 relative."""
    a, b = _clouds()
    exact = ot_distance(a, b, "emd")
    assert exact == pytest.approx(0.94653, abs=1e-5)
    assert ot_distance(a, b, "sinkhorn_log", reg=1e-2) == pytest.approx(exact, rel=1.3e-3)


def test_potentials_shift_convention_and_duality():
    a, b = _clouds()
    value, f, g = ot_potentials(a, b, "emd")
    assert f.mean() == pytest.approx(g.mean(), abs=1e-12)  # ⟨a, f⟩ = ⟨b, g⟩
    assert f.mean() + g.mean() == pytest.approx(value, rel=1e-9)  # strong duality
    value_s, f_s, _ = ot_potentials(a, b, "sinkhorn_log", reg=1e-2)
    assert np.corrcoef(f, f_s)[0, 1] > 0.9


def test_transported_mass_follows_the_target():
    """Records standing in for many target examples get large weights; mean is 1."""
    rng = np.random.default_rng(2)
    sel = rng.normal(size=(2, 8))
    sel /= np.linalg.norm(sel, axis=1, keepdims=True)
    tgt = np.vstack([sel[0] + 0.01 * rng.normal(size=(9, 8)), sel[1] + 0.01 * rng.normal(size=(1, 8))])
    tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
    mass = transported_mass(sel, tgt, temperature=0.05)
    assert mass.mean() == pytest.approx(1.0)
    assert mass[0] == pytest.approx(1.8, abs=0.01) and mass[1] == pytest.approx(0.2, abs=0.01)
