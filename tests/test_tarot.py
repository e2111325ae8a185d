"""TAROT: §2.10 acceptance tests on planted Gaussian modes, whitening, and the papers pool end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.algorithms.transport import fit_whitener, ot_distance
from curate.select import run_selection
from curate.selectors.tarot import Neighbours, fixed_size, greedy_fill, otm
from curate.selectors.tarot_whitening import choose_whitening
from tests.conftest import REPO

MULTIMODAL = REPO / "data" / "targets" / "multimodal.jsonl"


class Modes:
    """§2.10.5: d = 16, 10 modes (centres 3·N(0, I), unit noise), 2 000 pool points per mode; two
    600-point target samples from modes 0/1/2 at 60/30/10 % (one to select with, one held out)."""

    def __init__(self, per_mode: int = 2000, n_target: int = 600, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.centres = 3 * rng.normal(size=(10, 16))
        self.labels = np.repeat(np.arange(10), per_mode)
        pool = self.centres[self.labels] + rng.normal(size=(len(self.labels), 16))
        target, held = (self._target(rng, n_target) for _ in range(2))
        w = fit_whitener([pool, target], "cholesky", shrinkage=0.0, ridge=1e-5, relative_ridge=False)
        self.cand, self.tgt, self.held = w.transform(pool), w.transform(target), w.transform(held)
        self.nbrs = Neighbours.build(self.cand, self.tgt, 2000)

    def _target(self, rng, n):
        modes = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
        return self.centres[modes] + rng.normal(size=(n, 16))

    def shares(self, sel):
        return np.bincount(self.labels[sel], minlength=10)[:3] / len(sel)


@pytest.fixture(scope="module")
def modes() -> Modes:
    return Modes()


def test_fixed_size_beats_mean_sim_and_random_and_keeps_mode_shares(modes):
    k = 600
    mean_sim = np.argsort(-(modes.cand @ modes.tgt.mean(axis=0)), kind="stable")[:k]
    rng = np.random.default_rng(1)
    random_ot = [ot_distance(modes.cand[rng.choice(len(modes.cand), k, replace=False)], modes.held) for _ in range(3)]
    ot_mean = ot_distance(modes.cand[mean_sim], modes.held)
    assert modes.shares(mean_sim)[0] > 0.95  # the failure TAROT targets: everything from the big mode
    variants = (("largest_f", "paper"), ("smallest_f", "paper"), ("greedy_f", "paper"), ("greedy_f", "fresh"))
    for rule, layering in variants:
        sel, _ = fixed_size(modes.cand, modes.tgt, k, modes.nbrs, rule, layering=layering)
        ot_sel = ot_distance(modes.cand[sel], modes.held)
        assert ot_sel < ot_mean < min(random_ot)
        np.testing.assert_allclose(modes.shares(sel), [0.6, 0.3, 0.1], atol=0.1)


def test_greedy_fill_serves_the_mode_the_full_layers_left_out():
    """Full layers already hold mode A; the overflowing layer offers A and B alike. The fill must go
    to B: the c-transform potentials see what is selected, the layer's own potentials do not."""
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]

    def near(centre, n):
        x = centre + 0.1 * rng.normal(size=(n, 8))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cand = np.vstack([near(a, 10), near(a, 5), near(b, 5)])
    tgt = np.vstack([near(a, 10), near(b, 10)])
    taken, delta = np.arange(10), np.arange(10, 20)
    for rounds in (1, 5):
        picked = greedy_fill(cand, tgt, taken, delta, 5, rounds, np.random.default_rng(0))
        assert sorted(picked) == list(range(15, 20))
    empty = greedy_fill(cand, tgt, np.zeros(0, np.int64), delta, 4, 4, np.random.default_rng(0))
    assert len(set(empty) & set(range(10, 15))) == 2  # from scratch, both modes are served


@pytest.mark.parametrize("layering", ["paper", "fresh"])
def test_fixed_size_count_and_layers(modes, layering):
    for k in (1, 599, 1500):
        sel, info = fixed_size(modes.cand, modes.tgt, k, modes.nbrs, layering=layering)
        assert len(sel) == len(np.unique(sel)) == k
        if layering == "paper":
            first, _ = modes.nbrs.first_layer(len(modes.cand))
        else:
            first = modes.nbrs.fresh_layers(len(modes.cand), k)
        full = np.flatnonzero(first < info["layers_full"])
        assert np.isin(full, sel).all()  # every item of a completed layer is in
        assert np.all(np.diff(first[sel]) >= 0)  # rank order follows the layers


def test_fresh_layers_take_one_new_record_per_target_example():
    """Two target examples with the same two nearest records in swapped order: the paper's layer 1
    repeats layer 0 and adds nothing; a fresh layer 1 moves each example on to its next new record."""
    ids = np.array([[0, 1, 2, 3], [1, 0, 4, 5], [6, 7, 8, 9]])
    nbrs = Neighbours(ids, np.ones(ids.shape, np.float32))
    paper, _ = nbrs.first_layer(10)
    assert np.bincount(paper[paper < 4], minlength=4).tolist() == [3, 1, 3, 3]  # layer 1: only 7 is new
    fresh = nbrs.fresh_layers(10, k=10)
    assert fresh[[0, 1, 6]].tolist() == [0, 0, 0]
    assert fresh[[2, 4, 7]].tolist() == [1, 1, 1]  # one new record per target example
    assert fresh[[3, 5, 8]].tolist() == [2, 2, 2] and fresh[9] == 3
    assert nbrs.fresh_layers(10, k=4)[[2, 4, 7]].tolist() == [1, 1, 1]  # the overflowing layer is kept
    assert (nbrs.fresh_layers(10, k=4)[[3, 5, 8, 9]] == 4).all()  # and nothing after it


def test_otm_estimates_the_ratio_and_stays_on_target(modes):
    """§2.10.6: ratio_hat ≈ 0.20 (30 % of the pool is target-like), ≥ 95 % of picks from modes 0–2."""
    res = otm(modes.cand, modes.tgt, modes.nbrs, stop_rule="reference")
    assert 0.1 <= res.ratio <= 0.3
    assert (modes.labels[res.indices] < 3).mean() >= 0.95


def test_otm_argmin_never_worse_than_reference_and_deterministic():
    small = Modes(per_mode=300, n_target=200, seed=3)
    ref = otm(small.cand, small.tgt, small.nbrs, stop_rule="reference")
    best = otm(small.cand, small.tgt, small.nbrs, stop_rule="argmin")
    for a, b in zip(best.folds, ref.folds, strict=True):
        assert a["ot"] <= b["ot"]
    again = otm(small.cand, small.tgt, small.nbrs, stop_rule="argmin")
    np.testing.assert_array_equal(again.indices, best.indices)
    other_folds = otm(small.cand, small.tgt, small.nbrs, stop_rule="argmin", fold_seed=7)
    assert not np.array_equal(other_folds.indices, best.indices)


def _nuisance_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eight huge-variance features that carry no information about 4 modes; target = mode 0."""
    rng = np.random.default_rng(4)
    centres = 3 * rng.normal(size=(4, 8))
    labels = np.repeat(np.arange(4), 1000)
    pool = np.hstack([centres[labels] + 0.3 * rng.normal(size=(4000, 8)), 30 * rng.normal(size=(4000, 8))])
    target = np.hstack([centres[[0] * 100] + 0.3 * rng.normal(size=(100, 8)), 30 * rng.normal(size=(100, 8))])
    return pool, target, labels


def _quiet_noise_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The opposite case, as in short-text embeddings: 8 informative features (6 modes) and 56
    low-variance features of pure noise, which full whitening blows up; target = modes 0-2."""
    rng = np.random.default_rng(5)
    centres = 3 * rng.normal(size=(6, 8))
    labels = np.repeat(np.arange(6), 700)
    modes = rng.choice(3, 120)
    pool = np.hstack([centres[labels] + rng.normal(size=(4200, 8)), 0.05 * rng.normal(size=(4200, 56))])
    target = np.hstack([centres[modes] + rng.normal(size=(120, 8)), 0.05 * rng.normal(size=(120, 56))])
    return pool, target, labels


def _on_target(pool, target, labels, modes, shrinkage, method="cholesky") -> float:
    w = fit_whitener([pool, target], method, shrinkage=shrinkage)
    cand, tgt = w.transform(pool), w.transform(target)
    sel, _ = fixed_size(cand, tgt, 300, Neighbours.build(cand, tgt, 500))
    return float(np.isin(labels[sel], modes).mean())


def test_whitening_ignores_dominant_nuisance_directions():
    """Unwhitened distance is decided by the nuisance features and picks records of every mode;
    whitened distance finds the target's mode."""
    pool, target, labels = _nuisance_pool()
    assert _on_target(pool, target, labels, [0], 0.0) >= 0.95
    assert _on_target(pool, target, labels, [0], 0.0, "none") < 0.5  # 0.25 would be chance


def test_whitening_strength_chosen_on_target_folds_follows_the_data():
    """shrinkage=cv keeps full whitening where dominant directions are nuisance, and drops it where
    the weak directions are noise (full whitening then costs on-target picks)."""
    pool, target, labels = _nuisance_pool()
    choice = choose_whitening(pool, target, depth=3)
    assert choice.whitener.shrinkage < 0.05  # Ledoit-Wolf's estimate: full whitening
    assert min(choice.curve.values()) == choice.curve[f"{choice.whitener.shrinkage:.4g}"]
    pool, target, labels = _quiet_noise_pool()
    choice = choose_whitening(pool, target, depth=3)
    assert choice.whitener.shrinkage == 1.0
    assert _on_target(pool, target, labels, [0, 1, 2], 1.0) > _on_target(pool, target, labels, [0, 1, 2], "auto")


def test_papers_pool_multimodal_target(papers_settings):
    doc = run_selection(papers_settings, pool="papers", selector="tarot", budget=40, target=str(MULTIMODAL))
    m = doc["metrics"]
    assert doc["budget"]["selected"] == 40
    assert m["ot_distance"] < m["ot_distance_random"]
    counts = m["domain_counts"]
    assert counts.get("graph", 0) >= 5 and counts.get("diffusion", 0) >= 5  # both target modes covered
    assert counts.get("graph", 0) + counts.get("diffusion", 0) >= 24
    assert 0 < m["ratio_hat"] < 1
    subset = pl.read_parquet(f"{doc['path']}/subset.parquet")
    assert subset["weight"].mean() == pytest.approx(1.0)
    assert subset["weight"].std() > 0.05  # transported mass differs between records


def test_papers_pool_budget_auto_and_reference_compat(papers_settings):
    auto = run_selection(papers_settings, pool="papers", selector="tarot", budget="auto", target=str(MULTIMODAL))
    assert auto["budget"]["requested"] == "auto"
    assert auto["budget"]["selected"] == round(auto["metrics"]["ratio_hat"] * 427)
    ref = run_selection(
        papers_settings,
        pool="papers",
        selector="tarot",
        budget=30,
        target=str(MULTIMODAL),
        params={"compat": "reference", "estimate_ratio": False},
    )
    subset = pl.read_parquet(f"{ref['path']}/subset.parquet")
    assert (subset["weight"] == 1.0).all()  # the reference trains unweighted by default
    assert ref["metrics"]["whitening"]["shrinkage"] == 0.0


def test_budget_auto_rejected_by_selectors_that_cannot_size_themselves(papers_settings):
    from curate.errors import InputError

    with pytest.raises(InputError, match="cannot choose its own budget"):
        run_selection(papers_settings, pool="papers", selector="random", budget="auto")


def test_brought_in_vectors_need_a_target_pool_with_the_same_vectors(tmp_path, settings):
    """Vectors from a field (e.g. projected gradients): a texts target cannot be embedded alike,
    a target pool carrying the same kind of vectors works."""
    import json

    from curate.errors import InputError
    from curate.ingest import IngestParams, ingest

    rng = np.random.default_rng(5)
    centres = 3 * rng.normal(size=(3, 12))

    def rows(n, modes, prefix):
        lab = rng.choice(modes, n)
        vec = centres[lab] + rng.normal(size=(n, 12))
        return [{"id": f"{prefix}{i}", "text": f"{prefix} {i}", "vec": v.tolist(), "mode": int(m)} for i, (v, m) in
                enumerate(zip(vec, lab, strict=True))]  # fmt: skip

    for name, data in (("cands", rows(600, [0, 1, 2], "c")), ("goal", rows(40, [2], "g"))):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
        ingest(settings, path, name, IngestParams(embedding_field="vec", domain_field="mode", clusters=0))
    with pytest.raises(InputError, match="not made by a model"):
        run_selection(settings, pool="cands", selector="tarot", budget=50, target=str(tmp_path / "goal.jsonl"))
    doc = run_selection(settings, pool="cands", selector="tarot", budget=50, target="goal")
    assert doc["metrics"]["domain_counts"].get("2", 0) >= 45
