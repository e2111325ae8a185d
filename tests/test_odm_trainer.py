"""ODM with a real trainer: a real ``curate serve``, the real tiny proxy LM, a few dozen steps.

The pool holds three Debian sections and one "noise" domain of random words drawn from those
sections' vocabulary: the model cannot learn it, so its training loss stays the highest, which is
the one loss pattern whose effect on ODM is known in advance: the bandit leans toward it. Mildly, in
the paper form (docs/odm.md: R̂ ≈ L/π under a decaying temperature keeps π near uniform), but every
step of this run is deterministic, so the ordering asserted below is a property, not a coin flip.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from curate.client import MixingSession
from curate.config import Settings
from curate.eval.mixing_trainer import (
    ProxyTrainer,
    TokenMap,
    TrainerParams,
    Validation,
    steps_to_reach,
    train_with_session,
)
from curate.eval.tokenize import Vocab
from curate.ingest import IngestParams, ingest
from tests.apiserver import LiveServer
from tests.realtext import corpus, write_jsonl

STEPS, WARMUP, MICRO = 40, 4, 4
PARAMS = TrainerParams(steps=STEPS, batch_size=16, eval_every=20, vocab_size=1024, max_tokens=32)


def _noise(texts: list[str], n: int, seed: int) -> list[str]:
    """Texts of 20 words drawn uniformly from the 400 commonest one-token words of ``texts``: real
    tokens, no structure, a flat distribution (≥ ln 400 ≈ 6 nats a token) that real text soon beats."""
    counts = pl.Series(" ".join(texts).lower().split()).value_counts(sort=True)
    words = counts[:, 0].to_list()
    _, offsets = Vocab(8).encode(words)
    single = [w for w, k in zip(words, np.diff(offsets), strict=True) if k == 1][:400]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(single, 20)) for _ in range(n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend with the server process
    root = tmp_path_factory.mktemp("odm-trainer")
    real = corpus("debian", n_domains=3, per_domain=110, seed=5)
    noise = _noise(real["text"].to_list(), 50, seed=5)  # 40 in the pool: an eighth of it
    df = pl.concat(
        [real, pl.DataFrame({"id": [f"noise:{i}" for i in range(50)], "text": noise, "domain": ["noise"] * 50})]
    )
    held = df.group_by("domain", maintain_order=True).head(10)
    pool_df = df.join(held, on="id", how="anti")
    settings = Settings(home=root / "home")
    ingest(settings, write_jsonl(pool_df, root / "pool.jsonl"), "mix", IngestParams(embed=False, clusters=0))
    tokens = TokenMap(pool_df["text"].to_list(), PARAMS.vocab_size, PARAMS.max_tokens)
    validation = Validation(tokens, {d: part["text"].to_list() for (d,), part in held.group_by("domain")})
    server = LiveServer(settings.home).start()
    session = MixingSession.create(
        server.url, "mix", params={"warmup_steps": WARMUP, "micro_batches": MICRO, "init": "records"}, seed=0
    )
    log = train_with_session(session, ProxyTrainer(tokens, PARAMS), validation)
    yield server, session, log, pool_df
    session.close()
    server.stop()
    torch.set_num_threads(threads)


def test_weights_respond_to_feedback_and_favour_the_persistently_hard_domain(setup):
    _, session, log, _ = setup
    first = log.steps[0].sampling_weights
    for rec in log.steps[:WARMUP]:  # warm-up: feedback accepted, never applied
        assert not rec.updated and rec.weights_after == pytest.approx(first)
    assert all(rec.updated for rec in log.steps[WARMUP:])
    moved = [max(abs(r.weights_after[g] - r.sampling_weights[g]) for g in first) for r in log.steps[WARMUP:]]
    assert min(moved) > 0  # every applied report moved the mixture
    mean_loss = {g: np.mean([r.losses[g] for r in log.steps if g in r.losses]) for g in first}
    assert max(mean_loss, key=mean_loss.get) == "noise", mean_loss  # the premise: noise stays hardest
    late = {g: np.mean([r.weights_after[g] for r in log.steps[-10:]]) for g in first}
    assert late["noise"] > max(w for g, w in late.items() if g != "noise"), late
    assert late["noise"] > 1 / len(first) > first["noise"]  # from its small pool share to above uniform
    assert session.state(limit=1)["weights"] == pytest.approx(log.steps[-1].weights_after)


def test_batches_follow_the_session_weights(setup):
    server, session, log, pool_df = setup
    groups = dict(zip(pool_df["id"].to_list(), pool_df["domain"].to_list(), strict=True))
    names = sorted(log.steps[0].sampling_weights)
    counts = dict.fromkeys(names, 0)
    for prev, rec in zip([None, *log.steps[:-1]], log.steps, strict=True):
        if prev is not None:  # a sequential loop: each batch is drawn from the previous feedback's weights
            assert rec.sampling_weights == pytest.approx(prev.weights_after, abs=1e-12)
        sizes = {m["group"]: 0 for m in rec.micro_batches}
        for m in rec.micro_batches:
            sizes[m["group"]] += m["size"]
            counts[m["group"]] += 1
        assert {g: rec.groups.count(g) for g in set(rec.groups)} == sizes
        assert [groups[i] for i in rec.ids] == rec.groups  # each record really is of the group it is served as
        assert set(rec.losses) == set(sizes) and all(np.isfinite(list(rec.losses.values())))
    pi = np.array([[r.sampling_weights[g] for g in names] for r in log.steps])
    expected = MICRO * pi.sum(axis=0)
    sd = np.sqrt(MICRO * (pi * (1 - pi)).sum(axis=0))
    got = np.array([counts[g] for g in names])
    assert np.all(np.abs(got - expected) <= 4 * sd + 1), (got, expected)
    history = session.state(limit=STEPS)["history"]
    assert [h["sampling_weights"] for h in history] == [r.sampling_weights for r in log.steps]
    assert [h["losses"] for h in history] == [pytest.approx(r.losses) for r in log.steps]


def test_the_trainer_learns_and_the_curve_is_measured(setup):
    _, _, log, _ = setup
    steps = [c["step"] for c in log.curve]
    assert steps == [0, 20, 40]
    start, end = log.curve[0], log.curve[-1]
    assert end["per_domain"]["noise"] < start["per_domain"]["noise"]  # even noise: its word set is learnable
    real = [g for g in end["per_domain"] if g != "noise"]
    assert all(end["per_domain"][g] < start["per_domain"][g] - 1.0 for g in real), (start, end)
    assert end["loss"] == pytest.approx(np.mean(list(end["per_domain"].values())))
    assert steps_to_reach(log.curve, end["loss"]) <= 40
    assert steps_to_reach(log.curve, start["loss"]) == 0
    assert steps_to_reach(log.curve, end["loss"] - 10) is None


def test_frozen_manifest_matches_the_records_trained_on(setup):
    server, session, log, _ = setup
    doc = session.freeze()
    served = [i for r in log.steps for i in r.ids]
    assert doc["budget"]["selected"] == len(set(served))
    assert doc["mixture"] == pytest.approx(log.steps[-1].weights_after)
    assert doc["selector"]["params"]["steps_applied"] == STEPS
    with server.client() as http:
        resp = http.get(f"/v1/manifests/{doc['id']}/subset", params={"format": "jsonl"})
        assert resp.status_code == 200, resp.text
    rows = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    assert [r["id"] for r in rows] == list(dict.fromkeys(served))  # unique, in first-served order
