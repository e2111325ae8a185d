"""ODM with a real trainer: steps to a target validation loss, odm vs uniform vs proportional mixing.

Corpus: Debian package descriptions labelled by archive Section (tests/realtext.py), the ``--domains``
largest sections at their sizes in the source (imbalanced: libs has ~3× the records of the tenth).
``--held-out`` texts per domain are removed before ingest and are the validation set; the rest is
the pool. A real ``curate serve`` (uvicorn) runs on a temp home; every method is a mixing session on
it, and the same loop (curate.eval.mixing_trainer) trains the tiny proxy LM: ``next`` with texts →
one AdamW step → per-domain training losses of that batch → ``feedback``.

Methods (one code path; only the session parameters differ):
- ``uniform``: init uniform, ``warmup_steps`` = the step budget, so the bandit never updates;
- ``proportional``: init ``records`` (each domain's pool share), never updates;
- ``odm``: the bandit with the service defaults (paper form, α = 0.9) and the paper's warm-up ratio
  (2 000 of 100 000 steps → 2 %), initialised, as the paper's runs, with the natural (pool) mixture.
``--extra`` adds investigation variants (see ``EXTRA``).

Validation loss = mean over domains of each domain's held-out token loss. Target, per seed and
baseline: the baseline's final validation loss (the paper's metric: steps to reach the final
perplexity of the baseline). Steps are interpolated linearly between evaluations; ratio =
method's steps / the baseline's own steps to that loss (≤ the budget).

    nice -n 10 .venv/bin/python benchmarks/odm_trainer.py [--steps 300] [--seeds 3] > odm_trainer.json
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.client import MixingSession  # noqa: E402
from curate.config import Settings  # noqa: E402
from curate.eval.mixing_trainer import (  # noqa: E402
    ProxyTrainer,
    TokenMap,
    TrainerParams,
    Validation,
    session_params,
    steps_to_reach,
    train_with_session,
)
from curate.ingest import IngestParams, ingest  # noqa: E402
from tests.apiserver import LiveServer  # noqa: E402
from tests.realtext import corpus, write_jsonl  # noqa: E402

BASELINES = ("uniform", "proportional")


def method_params(method: str, steps: int, micro_batches: int) -> dict:
    """The headline methods' sessions (curate.eval.mixing_trainer.session_params), plus EXTRA."""
    if method in EXTRA:
        return {**session_params("odm", steps, micro_batches), **EXTRA[method]}
    return session_params(method, steps, micro_batches)


EXTRA = {  # investigation variants, run with --extra (not part of the headline comparison)
    # the reference 1B scripts: mixed minibatches, group update π ∝ exp(L̄) (ALGORITHMS.md §4.3)
    "odm_group": {"variant": "code_smoothed_mean_group", "alpha": 0.5, "micro_batches": 4},
    # the paper form with a lower smoothing factor (some reference scripts use 0.5)
    "odm_alpha05": {"alpha": 0.5},
    # the reference's Exp3WeightUpdater: cumulative importance-weighted reward, loss / 10
    "odm_exp3": {"variant": "code_exp3"},
    # the reference default start (uniform): warm-up batches then match uniform's, not proportional's
    "odm_uniform_init": {"init": "uniform"},
}


def split_corpus(n_domains: int, held_out: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    df = corpus("debian", n_domains=n_domains)
    df = df.with_columns(pl.Series("_r", np.random.default_rng(seed).random(df.height)))
    ranked = df.with_columns(pl.col("_r").rank("ordinal").over("domain").alias("_k"))
    held = ranked.filter(pl.col("_k") <= held_out).drop("_r", "_k")
    pool = ranked.filter(pl.col("_k") > held_out).drop("_r", "_k")
    return pool, held


def _mean_curve(runs: list[dict]) -> list[dict]:
    steps = [c["step"] for c in runs[0]["curve"]]
    losses = np.mean([[c["loss"] for c in r["curve"]] for r in runs], axis=0)
    return [{"step": s, "loss": float(v)} for s, v in zip(steps, losses, strict=True)]


def _ratio(hit: float | None, own: float) -> float | None:
    return None if hit is None else round(hit / own, 3)


def summarise(runs: dict[str, list[dict]], methods: list[str]) -> dict:
    """Per baseline: each method's steps to the baseline's final loss, per seed (ratios with their
    spread) and on the seed-mean curves (the paper's metric on averaged curves)."""
    out: dict = {}
    seeds = len(runs[methods[0]])
    mean = {m: _mean_curve(runs[m]) for m in methods}
    for base in BASELINES:
        per_method: dict = {}
        target_mean = mean[base][-1]["loss"]
        own_mean = steps_to_reach(mean[base], target_mean)
        for m in methods:
            hits, ratios = [], []
            for s in range(seeds):
                target = runs[base][s]["curve"][-1]["loss"]
                own = steps_to_reach(runs[base][s]["curve"], target)
                hit = steps_to_reach(runs[m][s]["curve"], target)
                hits.append(None if hit is None else round(hit, 1))
                ratios.append(_ratio(hit, own))
            ok = [r for r in ratios if r is not None]
            hit_mean = steps_to_reach(mean[m], target_mean)
            per_method[m] = {
                "steps_per_seed": hits,
                "ratio_per_seed": ratios,
                "ratio_mean": round(float(np.mean(ok)), 3) if ok else None,
                "ratio_std": round(float(np.std(ok, ddof=1)), 3) if len(ok) > 1 else None,
                "ratio_min_max": [min(ok), max(ok)] if ok else None,
                "seeds_not_reached": len(ratios) - len(ok),
                "steps_on_mean_curve": None if hit_mean is None else round(hit_mean, 1),
                "ratio_on_mean_curve": _ratio(hit_mean, own_mean),
            }
        out[f"to_final_loss_of_{base}"] = per_method
    return out


def paired_deltas(runs: dict[str, list[dict]], methods: list[str]) -> dict:
    """Final validation loss minus the baseline's in the same seed (same model init, same session seed):
    the paired difference, whose spread is what a method's effect has to exceed."""
    out: dict = {}
    for base in BASELINES:
        out[f"vs_{base}"] = {}
        for m in methods:
            d = [r["curve"][-1]["loss"] - b["curve"][-1]["loss"] for r, b in zip(runs[m], runs[base], strict=True)]
            out[f"vs_{base}"][m] = {
                "per_seed": [round(x, 4) for x in d],
                "mean": round(float(np.mean(d)), 4),
                "std": round(float(np.std(d, ddof=1)), 4) if len(d) > 1 else None,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--held-out", type=int, default=30, help="Validation texts per domain.")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--micro-batches", type=int, default=1, help="Domains per step (1 = the paper's Algorithm 1).")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the server is another process).")
    ap.add_argument("--extra", nargs="*", default=[], choices=sorted(EXTRA), help="Investigation variants.")
    ap.add_argument(
        "--only-extra",
        action="store_true",
        help="Run only the --extra variants (runs are deterministic per seed: pair them with a full run's).",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop the server
    started = time.perf_counter()
    pool_df, held = split_corpus(args.domains, args.held_out, seed=0)
    methods = [*([] if args.only_extra else ["uniform", "proportional", "odm"]), *args.extra]
    params = TrainerParams(steps=args.steps, batch_size=args.batch_size, eval_every=args.eval_every)
    with tempfile.TemporaryDirectory(prefix="odm-trainer-") as tmp:
        work = Path(tmp)
        settings = Settings(home=work / "home")
        ingest(
            settings,
            write_jsonl(pool_df, work / "pool.jsonl"),
            "debian",
            IngestParams(id_field="id", domain_field="domain", embed=False),
        )
        tokens = TokenMap(pool_df["text"].to_list(), params.vocab_size, params.max_tokens)
        by_domain = {d: part["text"].to_list() for (d,), part in held.group_by("domain")}
        validation = Validation(tokens, by_domain)
        server = LiveServer(settings.home).start()
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        try:
            for seed in range(args.seeds):
                for m in methods:
                    body = method_params(m, args.steps, args.micro_batches)
                    with MixingSession.create(server.url, "debian", params=body, seed=seed) as session:
                        trainer = ProxyTrainer(tokens, params.model_copy(update={"seed": seed}))
                        log = train_with_session(session, trainer, validation)
                        final_weights = session.state(limit=1)["weights"]
                    runs[m].append(
                        {
                            "curve": [{"step": c["step"], "loss": round(c["loss"], 4)} for c in log.curve],
                            "final_per_domain": {k: round(v, 4) for k, v in log.curve[-1]["per_domain"].items()},
                            "mean_mixture": {k: round(v, 4) for k, v in log.mean_mixture().items()},
                            "final_weights": {k: round(v, 4) for k, v in final_weights.items()},
                            "seconds": {k: round(v, 1) for k, v in log.seconds.items()},
                        }
                    )
                    print(f"seed {seed} {m}: final {log.curve[-1]['loss']:.4f} {log.seconds}", file=sys.stderr)
        finally:
            server.stop()

    sizes = pool_df.group_by("domain").len().sort("domain")
    curves = {
        m: {
            "steps": [c["step"] for c in runs[m][0]["curve"]],
            "loss_mean": np.mean([[c["loss"] for c in r["curve"]] for r in runs[m]], axis=0).round(4).tolist(),
            "loss_per_seed": [[c["loss"] for c in r["curve"]] for r in runs[m]],
        }
        for m in methods
    }
    out = {
        "benchmark": "odm_trainer",
        "corpus": "debian descriptions by Section",
        "pool_records": dict(zip(sizes["domain"].to_list(), sizes["len"].to_list(), strict=True)),
        "held_out_per_domain": args.held_out,
        "trainer": {**params.model_dump(), "vocab_coverage": round(tokens.coverage, 4), "threads": args.threads},
        "micro_batches": args.micro_batches,
        "seeds": args.seeds,
        "methods": {m: method_params(m, args.steps, args.micro_batches) for m in methods},
        "target": "per seed, the baseline's final validation loss (mean over domains of held-out token loss)",
        "steps_to_target": summarise(runs, methods) if not args.only_extra else None,
        "final_loss_paired_delta": paired_deltas(runs, methods) if not args.only_extra else None,
        "final_loss": {
            m: {
                "mean": round(float(np.mean([r["curve"][-1]["loss"] for r in runs[m]])), 4),
                "std_between_seeds": round(float(np.std([r["curve"][-1]["loss"] for r in runs[m]], ddof=1)), 4)
                if len(runs[m]) > 1
                else None,
                "per_seed": [r["curve"][-1]["loss"] for r in runs[m]],
            }
            for m in methods
        },
        "mixture_tilt": {  # how far each method's time-average mixture is from uniform
            m: {
                "max_over_min_mean_weight": round(
                    float(
                        np.mean([max(r["mean_mixture"].values()) / min(r["mean_mixture"].values()) for r in runs[m]])
                    ),
                    3,
                ),
                "total_variation_from_uniform": round(
                    float(
                        np.mean(
                            [
                                0.5 * sum(abs(w - 1 / len(r["mean_mixture"])) for w in r["mean_mixture"].values())
                                for r in runs[m]
                            ]
                        )
                    ),
                    4,
                ),
            }
            for m in methods
        },
        "curves": curves,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
