"""ODM's EXP3 bandit (ALGORITHMS.md §4.10): golden trajectory, invariants, simulator, persistence."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.algorithms.bandit import VARIANTS, BanditParams, OnlineMixer, apply_floor, epsilon, replay, simulate


def _gaussian(means, sigma=0.1):
    means = np.asarray(means, float)
    return lambda arm, counts, rng: float(means[arm] + sigma * rng.standard_normal())


def test_golden_trajectory_paper_form():
    mixer = OnlineMixer(3, BanditParams(variant="paper", alpha=0.9, warmup_steps=2000))
    for step in range(1, 2001):  # warm-up: observed, never applied
        assert not mixer.observe(step, [step % 3], [5.0])
        assert np.array_equal(mixer.probs(), np.full(3, 1 / 3))
    assert mixer.observe(2001, [0], [3.0])
    np.testing.assert_allclose(mixer.estimates, [0.9, 0, 0], atol=1e-12)
    assert mixer.eps == pytest.approx(0.0135281, abs=1e-7)
    np.testing.assert_allclose(mixer.probs(), [0.400134, 0.299933, 0.299933], atol=1e-6)
    mixer.observe(2002, [1], [2.0])
    np.testing.assert_allclose(mixer.estimates, [0.9, 0.666816, 0], atol=1e-6)
    np.testing.assert_allclose(mixer.probs(), [0.334967, 0.333955, 0.331078], atol=1e-6)
    mixer.observe(2003, [0], [3.0])
    assert mixer.estimates[0] == pytest.approx(1.705609, abs=1e-6)
    np.testing.assert_allclose(mixer.probs(), [0.337300, 0.332783, 0.329917], atol=1e-6)


def test_code_exp3_matches_first_step_then_diverges():
    paper = OnlineMixer(3, BanditParams(variant="paper", warmup_steps=2000))
    code = OnlineMixer(3, BanditParams(variant="code_exp3", warmup_steps=2000))
    for m in (paper, code):
        m.observe(2001, [0], [3.0])
    np.testing.assert_allclose(code.probs(), paper.probs(), atol=1e-12)  # (1 − α) = 1/10 = reward scale
    for m in (paper, code):
        m.observe(2002, [1], [2.0])
        m.observe(2003, [0], [3.0])
    assert np.abs(code.probs() - paper.probs()).max() > 1e-4  # cumulative vs moving average


@pytest.mark.parametrize("variant", VARIANTS)
def test_invariants_every_step(variant):
    params = BanditParams(variant=variant, warmup_steps=50, alpha=0.5)
    mixer = OnlineMixer(4, params, init_weights=[4, 3, 2, 1], seed=3)
    rng = np.random.default_rng(0)
    for step in range(1, 400):
        before = mixer.probs()
        arms = np.unique(mixer.sample(3))
        mixer.observe(step, arms, rng.uniform(0.5, 4.0, len(arms)))
        pi = mixer.probs()
        assert abs(pi.sum() - 1) < 1e-12
        if step <= 50:
            assert np.array_equal(pi, before)
            np.testing.assert_allclose(pi, [0.4, 0.3, 0.2, 0.1], atol=1e-15)
        elif variant != "code_ema":
            assert pi.min() >= epsilon(step, 4) - 1e-15


def test_weights_move_toward_hard_domain_and_respect_floor():
    params = BanditParams(warmup_steps=0, min_prob=0.05)
    mixer = OnlineMixer(3, params, seed=1)
    sim = simulate(mixer, _gaussian([0.01, 1.0, 3.0], sigma=0.01), range(1, 3001), seed=2)
    pi = np.array(sim["probs"].to_list())
    assert np.all(np.abs(pi.sum(axis=1) - 1) < 1e-12) and pi.min() >= 0.05 - 1e-15
    late = pi[-1000:].mean(axis=0)
    assert late[2] > late[1] > late[0]  # the hard domain gains, the near-zero-loss one loses
    assert late[2] - late[0] > 0.01


def test_floor_projection_keeps_ratios():
    p = apply_floor(np.array([0.9, 0.09, 0.01]), 0.05)
    np.testing.assert_allclose(p.sum(), 1.0)
    assert p[2] == pytest.approx(0.05) and p[0] / p[1] == pytest.approx(10.0)


def test_simulator_constant_losses_are_ordered_and_identical_domains_stay_uniform():
    params = BanditParams(variant="paper", alpha=0.9, warmup_steps=2000)
    for seed in range(3):
        ordered = simulate(OnlineMixer(3, params), _gaussian([1.0, 2.0, 3.0]), range(2001, 7001), seed=seed)
        mean = np.array(ordered.filter(pl.col("step") >= 4001)["probs"].to_list()).mean(axis=0)
        assert mean[0] < mean[1] < mean[2], (seed, mean)
    same = simulate(OnlineMixer(3, params), _gaussian([2.0, 2.0, 2.0]), range(2001, 7001), seed=9)
    mean = np.array(same["probs"].to_list()).mean(axis=0)
    assert np.abs(mean - 1 / 3).max() < 0.005


def test_group_variant_tracks_exp_loss():
    losses = np.array([2.0, 2.5, 3.0, 3.5])
    params = BanditParams(variant="code_smoothed_mean_group", alpha=0.5, warmup_steps=100)
    sim = simulate(OnlineMixer(4, params), _gaussian(losses, 0.05), range(1, 3001), seed=4, micro_batches=8)
    late = np.array(sim["probs"].to_list())[-500:].mean(axis=0)
    assert np.corrcoef(late, np.exp(losses))[0, 1] > 0.99
    assert late[3] / late[0] > 3  # a strong tilt, unlike the paper form


def test_state_dict_round_trip_continues_identically():
    params = BanditParams(warmup_steps=10, variant="paper")
    a = OnlineMixer(5, params, seed=11)
    rng = np.random.default_rng(5)
    for step in range(1, 200):
        arm = a.sample(1)
        a.observe(step, arm, [rng.uniform(1, 3)])
    b = OnlineMixer.from_state(a.state_dict())
    for step in range(200, 400):
        arm_a, arm_b = a.sample(2), b.sample(2)
        assert np.array_equal(arm_a, arm_b)
        loss = [rng.uniform(1, 3)]
        a.observe(step, arm_a[:1], loss)
        b.observe(step, arm_b[:1], loss)
        assert np.array_equal(a.probs(), b.probs())


def test_same_seed_same_feedback_same_draws():
    runs = []
    for _ in range(2):
        m = OnlineMixer(4, BanditParams(warmup_steps=5), seed=42)
        trace = []
        for step in range(1, 100):
            arms = m.sample(4)
            uniq = np.unique(arms)
            m.observe(step, uniq, 1.0 + uniq / 2)
            trace.append((arms.tolist(), m.probs().tolist()))
        runs.append(trace)
    assert runs[0] == runs[1]
    other = OnlineMixer(4, BanditParams(warmup_steps=5), seed=43)
    assert [other.sample(4).tolist() for _ in range(5)] != [a for a, _ in runs[0][:5]]


def test_replay_reproduces_online_trajectory():
    params = BanditParams(warmup_steps=20, variant="paper")
    online = OnlineMixer(3, params, seed=0)
    sim = simulate(online, _gaussian([1.0, 2.0, 3.0]), range(1, 500), seed=1, micro_batches=2)
    log = sim.select("step", "arm", "loss").explode("arm", "loss")
    trajectory = np.array(replay(log, 3, params)["probs"].to_list())
    np.testing.assert_array_equal(trajectory[-1], online.probs())
    np.testing.assert_array_equal(trajectory[:-1], np.array(sim["probs"].to_list())[1:])  # π after s = π at s+1
    assert len(np.unique(trajectory.round(12), axis=0)) > 400  # it did move


def test_bad_inputs_are_rejected():
    m = OnlineMixer(3, BanditParams(warmup_steps=0))
    m.observe(5, [0], [1.0])
    with pytest.raises(ValueError, match="increase"):
        m.observe(5, [1], [1.0])
    with pytest.raises(ValueError, match="distinct"):
        m.observe(6, [1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        m.observe(7, [1], [float("nan")])
    with pytest.raises(ValueError, match="min_prob"):
        OnlineMixer(3, BanditParams(min_prob=0.4))


def test_prior_and_exploration_options():
    init = [0.7, 0.2, 0.1]
    plain = OnlineMixer(3, BanditParams(warmup_steps=10), init_weights=init)
    prior = OnlineMixer(3, BanditParams(warmup_steps=10, prior=True), init_weights=init)
    late = OnlineMixer(3, BanditParams(warmup_steps=10, t_origin="post_warmup"), init_weights=init)
    for m in (plain, prior, late):
        m.observe(11, [1], [2.0])
    assert plain.probs()[0] < 0.4 < prior.probs()[0]  # reference: the recipe is forgotten after warm-up
    assert late.eps == pytest.approx(epsilon(1, 3)) and plain.eps == pytest.approx(epsilon(11, 3))
    floor = OnlineMixer(3, BanditParams(warmup_steps=0, min_eps=0.2))
    floor.observe(10_000, [0], [1.0])
    assert floor.eps == 0.2 and floor.probs().min() >= 0.2 - 1e-15
