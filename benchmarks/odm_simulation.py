"""Offline ODM simulation: does the bandit reach a held-out loss in fewer steps than fixed mixtures?

A shared linear model (online logistic regression, SGD) trains on K synthetic domains. Each
domain lives in its own block of features (no transfer between domains, so the mixture only
decides where samples go); domains differ in difficulty (block width: more parameters to learn)
and in label noise (irreducible loss: the known trap of loss-as-reward). Pool sizes are skewed
so that "proportional" (the paper's token-proportional prior) under-samples the hard domains.

Methods, all on the same data streams and seeds: uniform, proportional, ODM paper form, ODM
with the reference code's mixed-minibatch group variant. Held-out loss = mean over domains of
the held-out log-loss. Metric, as in the paper: steps each method needs to reach the final
held-out loss of a fixed-mixture baseline (uniform; proportional), and the ratio to that
baseline's own steps. Two scenarios: with the label-noise "spam" domain (the loss-as-reward
trap) and without it.

    python benchmarks/odm_simulation.py [--steps 3000] [--seeds 3]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from curate.algorithms.bandit import BanditParams, OnlineMixer

DOMAINS = [  # name, feature block width, label-flip noise, share of the pool
    ("web", 8, 0.02, 0.45),
    ("books", 16, 0.02, 0.25),
    ("code", 48, 0.02, 0.10),
    ("math", 64, 0.02, 0.05),
    ("forums", 24, 0.10, 0.10),
    ("spam", 8, 0.40, 0.05),
]
BATCH = 32
LR = 0.5
EVAL_EVERY = 25


class Task:
    def __init__(self, seed: int, domains: list[tuple]) -> None:
        rng = np.random.default_rng(seed)
        self.domains = domains
        widths = [w for _, w, _, _ in domains]
        self.offsets = np.cumsum([0] + widths)
        self.dim = int(self.offsets[-1])
        self.w_true = rng.standard_normal(self.dim) * 1.5
        self.held = [self.sample(d, 2000, np.random.default_rng(seed + 1000 + d)) for d in range(len(domains))]

    def sample(self, d: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros((n, self.dim))
        lo, hi = self.offsets[d], self.offsets[d + 1]
        x[:, lo:hi] = rng.standard_normal((n, hi - lo)) / np.sqrt(hi - lo) * 3
        y = (x @ self.w_true > 0).astype(float)
        flip = rng.random(n) < self.domains[d][2]
        return x, np.where(flip, 1 - y, y)


def _loss_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z = x @ w
    p = 1 / (1 + np.exp(-z))
    loss = float(np.mean(np.logaddexp(0, z) - y * z))
    return loss, x.T @ (p - y) / len(y)


def held_out(task: Task, w: np.ndarray) -> float:
    return float(np.mean([_loss_grad(w, x, y)[0] for x, y in task.held]))


def run(task: Task, method: str, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out loss every EVAL_EVERY steps, and the time-average mixture."""
    k = len(task.domains)
    rng = np.random.default_rng(seed)
    w = np.zeros(task.dim)
    share = np.array([s for *_, s in task.domains])
    share = share / share.sum()
    mixer, micro = None, 1
    if method == "odm_paper":
        mixer = OnlineMixer(k, BanditParams(variant="paper", warmup_steps=steps // 20), seed=seed)
    elif method == "odm_group":
        micro = 4
        params = BanditParams(variant="code_smoothed_mean_group", alpha=0.5, warmup_steps=steps // 20)
        mixer = OnlineMixer(k, params, seed=seed)
    curve, mix = [], np.zeros(k)
    for step in range(1, steps + 1):
        p = mixer.probs() if mixer else (share if method == "proportional" else np.full(k, 1 / k))
        mix += p
        arms = rng.choice(k, size=micro, p=p)
        xs, ys = zip(*(task.sample(int(a), BATCH // micro, rng) for a in arms), strict=True)
        x, y = np.concatenate(xs), np.concatenate(ys)
        losses = [_loss_grad(w, xi, yi)[0] for xi, yi in zip(xs, ys, strict=True)]  # forward pass of the step
        _, grad = _loss_grad(w, x, y)
        w -= LR * grad
        if mixer is not None:
            uniq, inv = np.unique(arms, return_inverse=True)
            mean = np.bincount(inv, weights=losses) / np.bincount(inv)
            mixer.observe(step, uniq, mean, p)
        if step % EVAL_EVERY == 0:
            curve.append(held_out(task, w))
    return np.array(curve), mix / steps


def steps_to(curve: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(curve <= target)
    return int((hit[0] + 1) * EVAL_EVERY) if len(hit) else None


def scenario(domains: list[tuple], steps: int, seeds: int) -> dict:
    methods = ["uniform", "proportional", "odm_paper", "odm_group"]
    curves: dict[str, list] = {m: [] for m in methods}
    mixes: dict[str, list] = {m: [] for m in methods}
    for seed in range(seeds):
        task = Task(seed, domains)
        for m in methods:
            curve, mix = run(task, m, steps, seed)
            curves[m].append(curve)
            mixes[m].append(mix)
    mean = {m: np.mean(curves[m], axis=0) for m in methods}  # mean held-out loss curve over seeds
    names = [d[0] for d in domains]
    out: dict = {
        "domains": [{"name": n, "width": w, "noise": z, "share": s} for n, w, z, s in domains],
        "final_held_out_loss": {m: round(float(mean[m][-1]), 5) for m in methods},
    }
    for baseline in ("uniform", "proportional"):  # the paper's metric: steps to the baseline's final loss
        target = float(mean[baseline][-1])
        base = steps_to(mean[baseline], target)
        hits = {m: steps_to(mean[m], target) for m in methods}
        out[f"steps_to_final_loss_of_{baseline}"] = hits
        out[f"steps_ratio_vs_{baseline}"] = {m: round(h / base, 3) if h else None for m, h in hits.items()}
    out["mean_mixture"] = {m: dict(zip(names, np.mean(mixes[m], 0).round(4).tolist(), strict=True)) for m in methods}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    started = time.perf_counter()
    clean = [d for d in DOMAINS if d[2] < 0.3]
    out = {
        "benchmark": "odm_simulation",
        "steps": args.steps,
        "seeds": args.seeds,
        "batch": BATCH,
        "eval_every": EVAL_EVERY,
        "scenarios": {
            "with_noisy_domain": scenario(DOMAINS, args.steps, args.seeds),
            "without_noisy_domain": scenario(clean, args.steps, args.seeds),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
