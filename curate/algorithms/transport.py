"""Optimal-transport building blocks for targeted selection: whitening, kNN, OT distance/potentials.

Whitening (ALGORITHMS.md §2.3) stops a few dominant embedding directions from deciding every
distance. The covariance is accumulated in float64 over row blocks (two passes: mean, then centred
second moments), so a memory-mapped pool of any length costs O(d²) memory. Shrinkage toward a
scaled identity (Ledoit–Wolf by default, computable from the same streamed moments) keeps Σ^{-1/2}
stable when the sample is not much larger than the dimension — the usual case for small targets.

OT: uniform weights, chord cost ‖u − v‖ between unit vectors (the reference's WFD); exact network
simplex (POT ``emd``) while the cost matrix is small, log-domain Sinkhorn beyond (plain Sinkhorn
underflows at the small ε the reference uses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

Method = Literal["cholesky", "zca", "none"]
Backend = Literal["auto", "emd", "sinkhorn_log"]
EXACT_MAX_CELLS = 25_000_000  # |A|·|B| up to which the exact solver is used (§2.3)
_BLOCK = 20_000


def _blocks(arrays: Iterable[np.ndarray], rows: int = _BLOCK) -> Iterable[np.ndarray]:
    for arr in arrays:
        for start in range(0, len(arr), rows):
            yield np.asarray(arr[start : start + rows], np.float64)


@dataclass
class Whitener:
    """x ↦ (x − μ) W, then rows scaled to unit length; W Wᵀ = Σ_shrunk⁻¹ (identity for ``none``)."""

    mean: np.ndarray
    matrix: np.ndarray | None
    method: str
    shrinkage: float
    ridge: float
    condition: float

    def transform(self, x: np.ndarray, normalize: bool = True) -> np.ndarray:
        out = np.empty((len(x), len(self.mean)), np.float32)
        for start in range(0, len(x), _BLOCK):
            z = np.asarray(x[start : start + _BLOCK], np.float64) - self.mean
            if self.matrix is not None:
                z = z @ self.matrix
            if normalize:
                z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
            out[start : start + len(z)] = z
        return out

    def summary(self) -> dict:
        return {
            "method": self.method,
            "shrinkage": round(self.shrinkage, 6),
            "ridge": self.ridge,
            "condition_number": float(f"{self.condition:.6g}"),
        }


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    n = sum(len(a) for a in arrays)
    if n < 2:
        raise ValueError("whitening needs at least 2 rows")
    return sum(b.sum(axis=0) for b in _blocks(arrays)) / n


@dataclass
class Moments:
    """Streamed first and second moments of rows (float64): one pass over the data serves every
    whitener built from them, so trying several shrinkages costs an eigendecomposition each."""

    mean: np.ndarray
    cov: np.ndarray
    fourth: float  # Σ‖x_i − μ‖⁴, for the Ledoit–Wolf shrinkage
    n: int

    @classmethod
    def of(cls, arrays: list[np.ndarray]) -> Moments:
        d, n, mean = arrays[0].shape[1], sum(len(a) for a in arrays), _mean(arrays)
        second = np.zeros((d, d))
        fourth = 0.0
        for b in _blocks(arrays):
            z = b - mean
            second += z.T @ z
            fourth += float(((z * z).sum(axis=1) ** 2).sum())
        return cls(mean, second / n, fourth, n)

    @cached_property
    def eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of S, once: every shrinkage only shifts the eigenvalues."""
        return np.linalg.eigh(self.cov)

    def shrunk_eigen(self, alpha: float, delta_ridge: float) -> np.ndarray:
        """Eigenvalues of Σ_shrunk, whose eigenvectors are S's."""
        return (1 - alpha) * self.eigen[0] + alpha * self.scale + delta_ridge

    @property
    def scale(self) -> float:
        return float(np.trace(self.cov)) / len(self.cov)

    def ledoit_wolf(self) -> float:
        """Ledoit & Wolf (2004): β = (1/n²)·Σ‖x xᵀ − S‖²_F = (Σ‖x‖⁴ − n‖S‖²_F)/n², δ² = ‖S − μI‖²_F."""
        cov, scale, n = self.cov, self.scale, self.n
        frob = float((cov * cov).sum())
        beta = max((self.fourth - n * frob) / n**2, 0.0)
        delta = frob - 2 * scale * float(np.trace(cov)) + scale**2 * len(cov)
        return min(beta, delta) / delta if delta > 0 else 1.0

    def whitener(
        self,
        method: Method = "cholesky",
        shrinkage: float | Literal["auto"] = "auto",
        ridge: float = 0.0,
        relative_ridge: bool = True,
    ) -> Whitener:
        """Σ_shrunk = (1 − α)·S + α·(tr S / d)·I + δ·I, where α is Ledoit–Wolf's estimate ("auto") or given,
        and δ = ridge (times tr S / d when ``relative_ridge``; the reference uses an absolute 1e-5).
        α = 1 leaves only centring (and the row normalisation): the unwhitened metric."""
        if method == "none":
            return Whitener(self.mean, None, method, 0.0, 0.0, 1.0)
        d, scale = len(self.cov), self.scale
        alpha = self.ledoit_wolf() if shrinkage == "auto" else float(shrinkage)
        delta_ridge = ridge * scale if relative_ridge else ridge
        evals, vecs = self.shrunk_eigen(alpha, delta_ridge), self.eigen[1]
        condition = float(evals.max() / max(evals.min(), 1e-300))
        if method == "zca":
            matrix = (vecs / np.sqrt(np.maximum(evals, 1e-300))) @ vecs.T
        elif method == "cholesky":
            sigma = (1 - alpha) * self.cov + (alpha * scale + delta_ridge) * np.eye(d)
            lower = np.linalg.cholesky(sigma)
            matrix = np.linalg.inv(lower).T  # W = L^{-T}: Cov(XW) = L⁻¹ Σ L^{-T} = I
        else:
            raise ValueError(f"unknown whitening method '{method}'")
        return Whitener(self.mean, matrix, method, alpha, delta_ridge, condition)


def fit_whitener(
    arrays: list[np.ndarray],
    method: Method = "cholesky",
    shrinkage: float | Literal["auto"] = "auto",
    ridge: float = 0.0,
    relative_ridge: bool = True,
) -> Whitener:
    """Fit on the rows of all ``arrays`` jointly (the reference fits on candidates ∪ target); see
    :meth:`Moments.whitener` for the shrunk covariance."""
    if method == "none":  # the mean is all it needs: skip the second moments
        return Whitener(_mean(arrays), None, method, 0.0, 0.0, 1.0)
    return Moments.of(arrays).whitener(method, shrinkage, ridge, relative_ridge)


def knn_search(base: np.ndarray, queries: np.ndarray, k: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of every query row against ``base`` (faiss flat index, batched)."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, np.float32))
    k = min(k, len(base))
    sims = np.empty((len(queries), k), np.float32)
    ids = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), batch):
        q = np.ascontiguousarray(queries[start : start + batch], np.float32)
        sims[start : start + len(q)], ids[start : start + len(q)] = index.search(q, k)
    return sims, ids


def chord_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖u − v‖ for unit rows: sqrt(2 − 2⟨u, v⟩), float64 (the reference's whitened feature distance)."""
    sim = np.asarray(a, np.float64) @ np.asarray(b, np.float64).T
    return np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0))


def _solve(
    a_pts: np.ndarray,
    b_pts: np.ndarray,
    backend: Backend,
    reg: float,
    potentials: bool,
    a_weights: np.ndarray | None = None,
):
    import ot

    cost = chord_cost(a_pts, b_pts)
    if a_weights is None:
        a = np.full(len(a_pts), 1.0 / len(a_pts))
    else:
        a = np.asarray(a_weights, np.float64) / float(np.sum(a_weights))
    b = np.full(len(b_pts), 1.0 / len(b_pts))
    if backend == "auto":
        backend = "emd" if cost.size <= EXACT_MAX_CELLS else "sinkhorn_log"
    if backend == "emd":
        plan, log = ot.emd(a, b, cost, numItermax=10_000_000, log=True)
        f, g = log["u"], log["v"]
    elif backend == "sinkhorn_log":
        plan, f, g = sinkhorn_log(a, b, cost, reg)
    else:
        raise ValueError(f"unknown OT backend '{backend}' (auto, emd, sinkhorn_log)")
    value = float((plan * cost).sum())
    if not potentials:
        return value, None, None
    # Potentials are defined up to (f + c, g − c): centre them so each side carries half of the dual.
    shift = (float(a @ f) - float(b @ g)) / 2.0
    return value, f - shift, g + shift


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return (np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def sinkhorn_log(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    reg: float,
    scaling: float = 0.5,
    tol: float = 1e-4,
    max_iter: int = 2000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entropic OT in the log domain with ε-annealing (as geomloss): start at ε ≈ max cost, halve
    down to ``reg``, warm-starting each level from the last — a few hundred iterations in all where
    a cold start at ε = 1e-3 needs tens of thousands. Returns (plan, f, g)."""
    log_a, log_b = np.log(a), np.log(b)
    f = np.zeros(len(a))
    g = np.zeros(len(b))
    schedule = []
    eps = max(float(cost.max()), reg)
    while eps > reg:
        schedule.append(eps)
        eps *= scaling
    schedule.append(reg)
    iterations = 0
    for level, eps in enumerate(schedule):
        last = level == len(schedule) - 1
        for it in range(max_iter if last else 20):
            f = -eps * _logsumexp((g[None, :] - cost) / eps + log_b[None, :], axis=1)
            g = -eps * _logsumexp((f[:, None] - cost) / eps + log_a[:, None], axis=0)
            iterations += 1
            # g's update makes the column marginals exact; stop when the row marginals are too.
            if last and it % 10 == 9:
                rows = np.exp(_logsumexp((f[:, None] + g[None, :] - cost) / eps + log_b[None, :], axis=1))
                if np.abs(rows - 1.0).max() < tol:
                    break
    plan = np.exp((f[:, None] + g[None, :] - cost) / reg + log_a[:, None] + log_b[None, :])
    return plan, f, g


def ot_distance(
    a_pts: np.ndarray,
    b_pts: np.ndarray,
    backend: Backend = "auto",
    reg: float = 1e-3,
    a_weights: np.ndarray | None = None,
) -> float:
    """OT cost ⟨P, C⟩ between two point clouds of unit vectors under the chord cost; uniform mass,
    or ``a_weights`` (normalised here) on the first — a weighted subset as a training job samples it."""
    if len(a_pts) == 0 or len(b_pts) == 0:
        return float("nan")
    return _solve(a_pts, b_pts, backend, reg, potentials=False, a_weights=a_weights)[0]


def ot_potentials(
    a_pts: np.ndarray, b_pts: np.ndarray, backend: Backend = "auto", reg: float = 1e-3
) -> tuple[float, np.ndarray, np.ndarray]:
    """(OT cost, f on ``a_pts``, g on ``b_pts``), shifted so that ⟨a, f⟩ = ⟨b, g⟩.

    ∂OT/∂a_i = f_i: adding mass where f is small lowers the distance to the target the most.
    """
    return _solve(a_pts, b_pts, backend, reg, potentials=True)


def transported_mass(
    sel_pts: np.ndarray, tgt_pts: np.ndarray, temperature: float = 0.5, neighbours: int = 32
) -> np.ndarray:
    """Share of the target's mass each selected point receives when every target example spreads
    its mass 1/M over its nearest selected points with a soft-min of the chord cost — the optimal
    plan of entropic OT with the selection's marginal left free. Scaled to mean 1 over the selection.

    A selected record that stands in for many target examples gets a large weight; one near no
    target example gets a small one. kNN (``neighbours``) keeps it O(M·k) for large selections.
    """
    if len(sel_pts) == 0:
        return np.zeros(0)
    sims, ids = knn_search(sel_pts, tgt_pts, neighbours)
    cost = np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0))
    logits = -(cost - cost[:, :1]) / temperature
    plan = np.exp(logits)
    plan /= plan.sum(axis=1, keepdims=True)
    valid = ids >= 0
    mass = np.bincount(ids[valid], plan[valid], minlength=len(sel_pts)) / len(tgt_pts)
    return mass * len(sel_pts)
