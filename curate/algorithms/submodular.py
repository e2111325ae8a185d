"""Submodular maximisation: set functions over a similarity kernel and greedy optimisers.

Functions (ALGORITHMS.md §5.3) keep their own incremental state, so a marginal gain costs one row of
the kernel: facility location tracks each element's best coverage, graph cut the running row sum of
the chosen set, log-determinant an incremental Cholesky factor (Chen et al.'s fast greedy MAP).
Kernels are dense (``ndarray``, n×n) or sparse (CSR from a faiss kNN graph) and must be symmetric:
row ``a`` doubles as column ``a``. Optimisers: naive, lazy (stale upper bounds in a heap; the same
picks as naive because gains only shrink) and stochastic greedy (Mirzasoleiman et al. 2015).
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

Kernel = np.ndarray | sp.csr_matrix
TieBreak = Literal["smallest_index", "largest_index"]
_BLOCK_CELLS = 1 << 22  # kernel cells per vectorised gain block (~32 MB of float64)


def cosine_kernel(x: np.ndarray, clip: bool = True, dtype: type = np.float64) -> np.ndarray:
    """Dense cosine similarity; clipping at 0 keeps facility location monotone (§5.8 pitfall 2)."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.maximum(norms, 1e-12)
    s = u @ u.T
    if clip:
        np.maximum(s, 0.0, out=s)
    return s.astype(dtype, copy=False)


def knn_kernel(x: np.ndarray, k: int = 50) -> sp.csr_matrix:
    """Sparse symmetric cosine kernel from an exact faiss kNN graph (each point is its own neighbour).

    Memory O(n·k) instead of n²: the only way facility location fits beyond ~20k points. Negative
    similarities are dropped, and the graph is symmetrised with max(S, Sᵀ) so rows serve as columns.
    """
    import faiss

    u = np.asarray(x, np.float32)
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    n = len(u)
    k = min(k, n)
    index = faiss.IndexFlatIP(u.shape[1])
    index.add(np.ascontiguousarray(u))
    sims, nbrs = index.search(np.ascontiguousarray(u), k)
    rows = np.repeat(np.arange(n), k)
    keep = (nbrs.ravel() >= 0) & (sims.ravel() > 0)
    graph = sp.csr_matrix((sims.ravel()[keep].astype(np.float64), (rows[keep], nbrs.ravel()[keep])), shape=(n, n))
    graph = graph.maximum(graph.T).tocsr()
    graph.setdiag(1.0)  # exact self-similarity, whatever float32 rounding did
    graph.sort_indices()
    return graph


def _sparse_rows(kernel: sp.csr_matrix, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, column ids, row lengths) of rows ``idx`` of a CSR kernel, gathered with numpy alone
    (scipy's fancy row indexing costs ~100 µs a call, which dominates lazy greedy)."""
    starts = kernel.indptr[idx]
    lens = kernel.indptr[idx + 1] - starts
    flat = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(lens.sum())
    return kernel.data[flat], kernel.indices[flat], lens


class SetFunction(ABC):
    """Incremental set function over ground set 0..n-1; ``gains`` never mutates, ``add`` does."""

    def __init__(self, kernel: Kernel) -> None:
        if kernel.shape[0] != kernel.shape[1]:
            raise ValueError("kernel must be square")
        self.kernel = kernel.tocsr() if sp.issparse(kernel) else np.asarray(kernel)
        self.n = kernel.shape[0]
        self.value = 0.0

    def gains(self, candidates: np.ndarray) -> np.ndarray:
        """Marginal gains of ``candidates`` (int array) w.r.t. the current set, float64."""
        out = np.empty(len(candidates), np.float64)
        step = max(1, _BLOCK_CELLS // max(self.n, 1))
        for start in range(0, len(candidates), step):
            block = candidates[start : start + step]
            out[start : start + len(block)] = self._gains(block)
        return out

    @abstractmethod
    def _gains(self, block: np.ndarray) -> np.ndarray:
        """Gains of a block of candidates; each function's own math."""

    def add(self, a: int) -> float:
        """Add element ``a``; returns its gain."""
        gain = float(self.gains(np.array([a]))[0])
        self._update(a)
        self.value += gain
        return gain

    @abstractmethod
    def _update(self, a: int) -> None:
        """Fold element ``a`` into the cached state the gains are computed from."""


class FacilityLocation(SetFunction):
    """f(X) = Σ_i max_{j∈X} s_ij, with the running max starting at 0 (as submodlib and apricot)."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.cover = np.zeros(self.n, np.float64)

    def _gains(self, block: np.ndarray) -> np.ndarray:
        if sp.issparse(self.kernel):
            vals, cols, lens = _sparse_rows(self.kernel, block)
            excess = np.maximum(vals - self.cover[cols], 0.0)
            return np.bincount(np.repeat(np.arange(len(block)), lens), excess, minlength=len(block))
        return np.maximum(self.kernel[block] - self.cover[None, :], 0.0).sum(axis=1)

    def _update(self, a: int) -> None:
        if sp.issparse(self.kernel):
            vals, cols, _ = _sparse_rows(self.kernel, np.array([a]))
            self.cover[cols] = np.maximum(self.cover[cols], vals)  # CSR columns are unique per row
        else:
            np.maximum(self.cover, self.kernel[a], out=self.cover)


class GraphCut(SetFunction):
    """f(X) = Σ_{j∈X} Σ_{i∈V} s_ij − λ Σ_{i,j∈X} s_ij; monotone for λ ≤ 0.5 and s ≥ 0."""

    def __init__(self, kernel: Kernel, lam: float = 0.4) -> None:
        super().__init__(kernel)
        self.lam = lam
        self.total = np.asarray(self.kernel.sum(axis=1), np.float64).ravel()
        self.diag = np.asarray(self.kernel.diagonal(), np.float64)
        self.inside = np.zeros(self.n, np.float64)  # Σ_{j∈X} s_aj for every a

    def _gains(self, block: np.ndarray) -> np.ndarray:
        return self.total[block] - 2.0 * self.lam * self.inside[block] - self.lam * self.diag[block]

    def _update(self, a: int) -> None:
        if sp.issparse(self.kernel):
            vals, cols, _ = _sparse_rows(self.kernel, np.array([a]))
            self.inside[cols] += vals
        else:
            self.inside += self.kernel[a]


class LogDeterminant(SetFunction):
    """f(X) = log det(S_X + λI), gains from an incremental Cholesky factor: O(n) per pick."""

    def __init__(self, kernel: Kernel, lam: float = 1.0) -> None:
        super().__init__(kernel)
        self.lam = lam
        self.residual = np.asarray(self.kernel.diagonal(), np.float64) + lam  # s_aa + λ − ‖c_a‖²
        self.factors: list[np.ndarray] = []  # one column of the Cholesky factor per chosen element

    def _gains(self, block: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.residual[block], 1e-300))

    def _update(self, a: int) -> None:
        row = self.kernel[a]
        row = np.asarray(row.toarray()).ravel() if sp.issparse(row) else np.asarray(row, np.float64)
        pivot = self.residual[a]
        if not pivot > 1e-12:  # degenerate (kernel not PSD, e.g. a kNN graph): nothing left to explain
            self.residual[a] = -np.inf
            return
        proj = sum((c[a] * c for c in self.factors), np.zeros(self.n)) if self.factors else np.zeros(self.n)
        e = (row - proj) / math.sqrt(pivot)
        e[a] = math.sqrt(pivot)  # the new pivot (diagonal carries λ)
        self.factors.append(e)
        self.residual -= e * e
        self.residual[a] = -np.inf  # chosen: never again


def make_function(name: str, kernel: Kernel, lam: float | None = None) -> SetFunction:
    if name == "fl":
        return FacilityLocation(kernel)
    if name == "gc":
        return GraphCut(kernel, 0.4 if lam is None else lam)
    if name == "logdet":
        return LogDeterminant(kernel, 1.0 if lam is None else lam)
    raise ValueError(f"unknown submodular function '{name}' (fl, gc, logdet)")


@dataclass
class GreedyResult:
    order: np.ndarray  # chosen elements, in pick order
    gains: np.ndarray  # marginal gain of each pick
    evaluations: int  # gain evaluations spent (lazy and stochastic save most of them)

    @property
    def values(self) -> np.ndarray:
        return np.cumsum(self.gains)


def _best(gains: np.ndarray, cands: np.ndarray, tie_break: TieBreak) -> int:
    top = gains.max()
    tied = cands[gains == top]
    return int(tied.max() if tie_break == "largest_index" else tied.min())


def naive_greedy(fn: SetFunction, budget: int, tie_break: TieBreak = "smallest_index") -> GreedyResult:
    """Evaluate every remaining element each step: the definition the faster optimisers must match."""
    budget = min(budget, fn.n)
    remaining = np.ones(fn.n, bool)
    order, gains, evals = [], [], 0
    for _ in range(budget):
        cands = np.flatnonzero(remaining)
        g = fn.gains(cands)
        evals += len(cands)
        a = _best(g, cands, tie_break)
        gains.append(fn.add(a))
        remaining[a] = False
        order.append(a)
    return GreedyResult(np.array(order, np.int64), np.array(gains, np.float64), evals)


def lazy_greedy(fn: SetFunction, budget: int, tie_break: TieBreak = "smallest_index", batch: int = 32) -> GreedyResult:
    """Minoux's accelerated greedy: stale gains are upper bounds (submodularity), so an element
    whose refreshed gain still tops the heap is the true argmax — the same pick as naive greedy."""
    budget = min(budget, fn.n)
    if budget == 0:
        return GreedyResult(np.zeros(0, np.int64), np.zeros(0), 0)
    cands = np.arange(fn.n)
    first = fn.gains(cands)
    sign = -1 if tie_break == "largest_index" else 1
    heap = [(-float(g), sign * int(i), 0) for i, g in zip(cands, first, strict=True)]
    heapq.heapify(heap)
    order, gains, evals, step = [], [], fn.n, 0
    while len(order) < budget:
        if heap[0][2] == step:  # fresh for this step and on top: it is the argmax
            _, key, _ = heapq.heappop(heap)
            gains.append(fn.add(sign * key))
            order.append(sign * key)
            step += 1
            continue
        # Refresh the stale top entries in one vectorised call: a few wasted evaluations cost far
        # less than one Python round trip per evaluation. Picks are unchanged (see docstring).
        stale = []
        while heap and heap[0][2] != step and len(stale) < batch:
            stale.append(heapq.heappop(heap)[1])
        keys = np.array(stale)
        fresh = fn.gains(sign * keys)
        evals += len(keys)
        for g, key in zip(fresh.tolist(), stale, strict=True):
            heapq.heappush(heap, (-g, key, step))
    return GreedyResult(np.array(order, np.int64), np.array(gains, np.float64), evals)


def stochastic_greedy(fn: SetFunction, budget: int, rng: np.random.Generator, epsilon: float = 0.01) -> GreedyResult:
    """Each step evaluates a random sample of (n/B)·ln(1/ε) remaining elements: (1 − 1/e − ε) in
    expectation at O(n·ln(1/ε)) gain evaluations in total, independent of the budget."""
    budget = min(budget, fn.n)
    if budget == 0:
        return GreedyResult(np.zeros(0, np.int64), np.zeros(0), 0)
    sample = min(fn.n, max(1, math.ceil(fn.n / budget * math.log(1.0 / epsilon))))
    remaining = np.arange(fn.n)
    order, gains, evals = [], [], 0
    for _ in range(budget):
        picks = remaining if len(remaining) <= sample else rng.choice(remaining, size=sample, replace=False)
        g = fn.gains(picks)
        evals += len(picks)
        a = _best(g, picks, "smallest_index")
        gains.append(fn.add(a))
        remaining = remaining[remaining != a]
        order.append(a)
    return GreedyResult(np.array(order, np.int64), np.array(gains, np.float64), evals)


def maximize(
    fn: SetFunction,
    budget: int,
    optimizer: Literal["naive", "lazy", "stochastic"] = "lazy",
    *,
    rng: np.random.Generator | None = None,
    epsilon: float = 0.01,
    tie_break: TieBreak = "smallest_index",
) -> GreedyResult:
    if optimizer == "naive":
        return naive_greedy(fn, budget, tie_break)
    if optimizer == "lazy":
        return lazy_greedy(fn, budget, tie_break)
    if optimizer == "stochastic":
        return stochastic_greedy(fn, budget, rng if rng is not None else np.random.default_rng(0), epsilon)
    raise ValueError(f"unknown optimizer '{optimizer}'")
