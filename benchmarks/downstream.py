"""Does selection help training? Every selector × 2 budgets, each manifest's proxy-LM loss on held-out
target texts beside random subsets of the same size, and how well each feature metric predicts it.

Corpus: Debian package descriptions (tests/realtext.py), ``--domains`` sections × ``--per-domain``
records. The target is section ``python``: ``--target-texts`` of its records steer the targeted
selectors (dsir, tarot), a disjoint ``--eval-texts`` are what the proxy is scored on; neither is in
the pool. The untargeted selectors (coverage, smart, stratified) are scored on the same held-out
texts: they are not aiming at them, and the table shows what that costs. The proxy is curate's own
eval (curate/eval, EvalParams defaults: interpolated Witten-Bell trigram LM, ≥ 3 random subsets,
bootstrap CIs over target texts and seeds).

    nice -n 10 .venv/bin/python benchmarks/downstream.py [--budgets 0.05 0.1] > downstream.json

The correlation rows are Pearson r between a manifest's feature metric (KL reduction, OT distance,
domain TV) and its downstream loss reduction vs random, over the (selector, budget) cells — DSIR
reports r = 0.89 for KL reduction against downstream accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.config import Settings  # noqa: E402
from curate.eval import EvalParams  # noqa: E402
from curate.eval.run import evaluate  # noqa: E402
from curate.ingest import IngestParams, ingest  # noqa: E402
from curate.select import run_selection  # noqa: E402
from tests.realtext import corpus, write_jsonl  # noqa: E402

TARGET_DOMAIN = "python"
SELECTORS = ["dsir", "tarot", "coverage", "smart", "stratified", "random"]
TARGETED = {"dsir", "tarot"}
FEATURES = ["kl_reduction", "ot_distance", "domain_tv"]


def pearson(x: list[float], y: list[float]) -> float | None:
    a, b = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return round(float(np.corrcoef(a[ok], b[ok])[0, 1]), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=12)
    ap.add_argument("--per-domain", type=int, default=400)
    ap.add_argument("--target-texts", type=int, default=100)
    ap.add_argument("--eval-texts", type=int, default=150)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-seeds", type=int, default=8, help="Random subsets per cell (docs/eval.md).")
    ap.add_argument("--cache-dir", type=Path, default=None, help="Embedding cache to reuse between runs.")
    args = ap.parse_args()

    started = time.perf_counter()
    df = corpus("debian", n_domains=args.domains, per_domain=args.per_domain, seed=args.seed)
    own = df.filter(pl.col("domain") == TARGET_DOMAIN).sample(fraction=1.0, shuffle=True, seed=args.seed)
    steer, held = own[: args.target_texts], own[args.target_texts : args.target_texts + args.eval_texts]
    pool_df = df.join(pl.concat([steer, held]), on="id", how="anti")
    work = Path(tempfile.mkdtemp(prefix="downstream-"))
    settings = Settings(home=work / "home", cache_dir_override=args.cache_dir)
    ingest(
        settings, write_jsonl(pool_df, work / "pool.jsonl"), "pool", IngestParams(id_field="id", domain_field="domain")
    )
    target_file = write_jsonl(steer.select("id", "text"), work / "target.jsonl")
    eval_file = write_jsonl(held.select("id", "text"), work / "held_out.jsonl")
    params = EvalParams(random_seeds=args.random_seeds)
    cells = []
    for budget in args.budgets:
        for name in SELECTORS:
            target = str(target_file) if name in TARGETED else None
            doc = run_selection(settings, pool="pool", selector=name, budget=budget, seed=args.seed, target=target)
            result = evaluate(settings, Path(doc["path"]), target=str(eval_file), params=params)
            metrics = doc["metrics"]
            cells.append(
                {
                    "selector": name,
                    "budget": budget,
                    "selected": doc["budget"]["selected"],
                    "target_share": round(
                        float(metrics.get("domain_counts", {}).get(TARGET_DOMAIN, 0))
                        / max(doc["budget"]["selected"], 1),
                        4,
                    ),  # fmt: skip
                    "loss": result["selection"]["loss"],
                    "loss_ci": result["selection"]["ci"],
                    "random_loss": result["random"]["loss"],
                    "delta": result["delta"]["loss"],
                    "delta_ci": result["delta"]["ci"],
                    "delta_seed_interval": result["delta"]["seed_interval"],
                    "random_std": result["random"]["std"],
                    "perplexity_ratio": result["delta"].get("perplexity_ratio"),
                    "better_than_random": result["better_than_random"],
                    **{f: metrics.get(f) for f in FEATURES},
                    **{f"{f}_random": metrics.get(f"{f}_random") for f in FEATURES},
                }
            )
            print(f"{name} @ {budget}: delta {result['delta']['loss']:+.4f} {result['delta']['ci']}", file=sys.stderr)
    gain = [-c["delta"] for c in cells]  # loss reduction vs random: higher is better
    correlation = {}
    for f in FEATURES:
        xs = [c[f] if c[f] is not None else np.nan for c in cells]
        correlation[f] = {
            "r_with_loss_reduction": pearson(xs, gain),
            "cells": int(np.isfinite(np.asarray(xs, float)).sum()),
        }
    print(
        json.dumps(
            {
                "benchmark": "downstream",
                "corpus": {"name": "debian", "domains": args.domains, "pool": pool_df.height,
                           "target_domain": TARGET_DOMAIN, "steer_texts": steer.height, "eval_texts": held.height},
                "eval_params": params.model_dump(mode="json"),
                "cells": cells,
                "correlation": correlation,
                "seconds": round(time.perf_counter() - started, 1),
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
