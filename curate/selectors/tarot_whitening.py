"""How much to whiten TAROT's features: the covariance shrinkage chosen on held-out target folds.

Why: whitening (ALGORITHMS.md §2.3) equalises every direction of the feature covariance, which
is what projected gradients need (a few dominant directions otherwise decide every distance), but
on sentence embeddings of short texts the low-variance directions are mostly noise; equalised,
they decide the neighbour rankings instead. Measured on Debian package descriptions (MiniLM,
12 sections): the share of a target example's 20th–50th nearest records that are in its own
section falls from 0.42 unwhitened to 0.22 whitened, so deeper layers drift off the target's
modes (docs/tarot.md). Ledoit–Wolf shrinkage does not help: it corrects estimation error (α ≈ 0.03
at 5k rows), not directions that are real variance but not signal.

So the strength is chosen the way Algorithm 2 chooses a size: per target fold, the neighbours of
the held-out part V_f (``depth`` per example, as deep as the budget's layers go) are scored by
their OT distance to the rest H_f, divided by that of a random pool subset of the same size in
the same metric (each metric scaled by its own spread), and the shrinkage with the lowest mean
ratio wins. The candidates run from Ledoit–Wolf's α (the paper's full whitening, up to the
estimate's correction) to α = 1 (centring only, the unwhitened ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curate.algorithms.transport import Moments, Whitener, knn_search, ot_distance

DEFAULT_GRID = (0.5, 0.8, 0.9, 0.95, 1.0)


@dataclass
class WhiteningChoice:
    whitener: Whitener
    curve: dict[str, float] = field(default_factory=dict)  # shrinkage → mean fold OT ratio vs random

    def summary(self) -> dict:
        return {**self.whitener.summary(), "chosen_by": "target folds", "fold_ot_ratio": self.curve}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, limit, replace=False)) if n > limit else np.arange(n)


def choose_whitening(
    raw_cand: np.ndarray,
    raw_tgt: np.ndarray,
    method: str = "cholesky",
    grid: tuple[float, ...] = DEFAULT_GRID,
    ridge: float = 1e-6,
    relative_ridge: bool = True,
    depth: int = 1,
    folds: int = 5,
    seed: int = 42,
    pool_sample: int = 10_000,
    target_sample: int = 2_000,
    ot_sample: int = 500,
) -> WhiteningChoice:
    """The whitener (fitted on candidates ∪ target, as the reference) whose shrinkage scores best
    on ``folds`` target folds. Bounded work at any size: the folds run on at most ``pool_sample``
    candidates and ``target_sample`` targets, and each OT problem has at most ``ot_sample`` points
    a side; one pass over the data gives the moments every candidate shrinkage is built from."""
    from sklearn.model_selection import KFold

    moments = Moments.of([raw_cand, raw_tgt])
    lw = moments.ledoit_wolf()
    alphas = [lw, *sorted(a for a in set(grid) if a > lw)]
    if len(raw_tgt) < 2:  # no fold can be held out: the paper's whitening
        return WhiteningChoice(moments.whitener(method, lw, ridge, relative_ridge))
    rng = np.random.default_rng(seed)
    cand_rows = _sample(len(raw_cand), pool_sample, rng)
    tgt_rows = _sample(len(raw_tgt), target_sample, rng)
    splits = list(KFold(min(folds, len(tgt_rows)), shuffle=True, random_state=seed).split(tgt_rows))
    plan = [  # per fold, drawn once for every shrinkage: the OT target sample and the random baseline
        (held, np.sort(rng.choice(rest, min(ot_sample, len(rest)), replace=False)), rng.permutation(len(cand_rows)))
        for rest, held in splits
    ]
    depth = max(1, min(depth, len(cand_rows)))
    # In S's eigenbasis every candidate whitening is a column scaling (ZCA's last rotation leaves
    # cosines alone, and any whitening gives ZCA's cosines, §2.3): rotate the samples once.
    vecs = moments.eigen[1]
    base_cand = (np.asarray(raw_cand[cand_rows], np.float64) - moments.mean) @ vecs
    base_tgt = (np.asarray(raw_tgt[tgt_rows], np.float64) - moments.mean) @ vecs
    delta_ridge = ridge * moments.scale if relative_ridge else ridge
    scores: dict[float, float] = {}
    for alpha in alphas:
        scale = 1.0 / np.sqrt(np.maximum(moments.shrunk_eigen(alpha, delta_ridge), 1e-300))
        cand, tgt = _unit(base_cand * scale), _unit(base_tgt * scale)
        _, near = knn_search(cand, tgt, depth)  # every fold's held-out part in one search
        ratios = []
        for held, rest, perm in plan:
            ids = near[held]
            sel = np.unique(ids[ids >= 0])
            sel = sel[_sample(len(sel), ot_sample, rng)] if len(sel) > ot_sample else sel
            rand = perm[: len(sel)]
            ratios.append(ot_distance(cand[sel], tgt[rest]) / ot_distance(cand[rand], tgt[rest]))
        scores[alpha] = float(np.mean(ratios))
    best = min(alphas, key=lambda a: (scores[a], a))  # ties: the stronger whitening, as the paper
    chosen = moments.whitener(method, best, ridge, relative_ridge)
    return WhiteningChoice(chosen, {f"{a:.4g}": round(s, 6) for a, s in scores.items()})
