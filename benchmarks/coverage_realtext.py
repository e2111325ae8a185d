"""CCS (`coverage`) on real short text (issue 12): held-out probe accuracy of a β × score sweep at
several pruning rates, random beside it, and the selector's default before/after the fix, all on
the same splits; one JSON object out.

Per seed: a Debian-descriptions pool (10 sections x ``--per-domain``) and a held-out labelled test
set (``--test`` per section), tests/coverage_realtext.py. For each pruning rate: random; CCS with
each score (prototypicality, el2n_probe) at each β (50 strata, the selector's functions, each score
computed once per seed); the selector at its current defaults and at the pre-fix defaults
(prototypicality, β = 0.1 from 70 %), both through ``run_selection``; and importance-only
easiest-first / hardest-first by el2n_probe (the collapse CCS exists to avoid).

    CURATE_CACHE_DIR=/work/cache/emb-realtext nice -n 10 python benchmarks/coverage_realtext.py \\
        --work /tmp/coverage-realtext > /work/notes/issue-12-coverage-sweep.json
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCORES = ("prototypicality", "el2n_probe")
BEFORE = {"score": "prototypicality", "beta": None}  # pre-fix defaults; β from the old schedule below
OLD_SCHEDULE = ((0.7, 0.0), (1.01, 0.1))


def old_beta(pruning: float) -> float:
    return next(beta for below, beta in OLD_SCHEDULE if pruning < below)


def one_seed(split, seed: int, rates: list[float], betas: list[float], strata: list[int], sweep: bool) -> dict:
    from tests.coverage_realtext import Scores, budget_of, ccs_rows, probe_accuracy, random_rows, run_default

    scores = Scores(split, seed)
    out: dict = {}
    for rate in rates:
        k = budget_of(split, rate)
        cell = {
            "budget": k,
            "random": probe_accuracy(split, random_rows(split, k, seed)),
            "default": run_default(split, "coverage", rate, seed),
            "before": run_default(split, "coverage", rate, seed, {**BEFORE, "beta": old_beta(rate)}),
        }
        if sweep:
            for name in SCORES:
                s = scores.get(name)
                for n_strata in strata:
                    for beta in betas:
                        cell[f"{name}/b{beta}/k{n_strata}"] = probe_accuracy(
                            split, ccs_rows(s, k, beta, seed, n_strata)
                        )
            el2n = scores.get("el2n_probe")
            cell["el2n_probe/easiest_first"] = probe_accuracy(split, np.argsort(el2n, kind="stable")[:k])
            cell["el2n_probe/hardest_first"] = probe_accuracy(split, np.argsort(-el2n, kind="stable")[:k])
        out[str(rate)] = cell
    return out


def summarise(runs: dict, seeds: list[int], rates: list[float]) -> dict:
    """Per rate: mean, std over seeds and seeds-above-random of every method; the best sweep cell."""
    table = {}
    for rate in rates:
        cells = [runs[str(s)][str(rate)] for s in seeds]
        rnd = np.array([c["random"] for c in cells])
        row = {"budget": cells[0]["budget"]}
        for key in cells[0]:
            if key == "budget":
                continue
            acc = np.array([c[key]["acc"] if isinstance(c[key], dict) else c[key] for c in cells])
            row[key] = {
                "mean": round(float(acc.mean()), 4),
                "std": round(float(acc.std()), 4),
                "minus_random": round(float((acc - rnd).mean()), 4),
                "seeds_above_random": int((acc > rnd).sum()),
            }
        for key in ("default", "before"):
            row[key]["beta"] = cells[0][key].get("beta")
        sweep = {k: v for k, v in row.items() if "/b" in k}
        if sweep:
            best = max(sweep, key=lambda k: sweep[k]["mean"])
            row["best_sweep_cell"] = {"name": best, **sweep[best]}
        table[str(rate)] = row
    return table


def main() -> None:
    from tests.coverage_realtext import N_DOMAINS, build_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.7, 0.8, 0.9, 0.95])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--strata", type=int, nargs="+", default=[50])
    ap.add_argument("--per-domain", type=int, default=600)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--no-sweep", action="store_true", help="Only random and the default before/after.")
    ap.add_argument("--work", type=Path, default=None, help="Keep the homes here (re-runs reuse the ingest).")
    args = ap.parse_args()
    runs: dict = {}
    seconds: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        for seed in args.seeds:
            start = time.perf_counter()
            split = build_split(root / f"seed-{seed}", seed, N_DOMAINS, args.per_domain, args.test)
            built = time.perf_counter()
            runs[str(seed)] = one_seed(split, seed, args.rates, args.betas, args.strata, not args.no_sweep)
            seconds[str(seed)] = {
                "split": round(built - start, 1),
                "selections": round(time.perf_counter() - built, 1),
            }
            print(f"seed {seed}: {seconds[str(seed)]}", file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "benchmark": "coverage_realtext",
                "corpus": f"debian package descriptions, {N_DOMAINS} largest sections",
                "pool_records": N_DOMAINS * args.per_domain,
                "test_records": N_DOMAINS * args.test,
                "probe": "sklearn LogisticRegression(C=1, max_iter=1000) on MiniLM embeddings",
                "rates": args.rates,
                "betas": args.betas,
                "strata": args.strata,
                "seeds": args.seeds,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "seconds": seconds,
                "summary": summarise(runs, args.seeds, args.rates),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
