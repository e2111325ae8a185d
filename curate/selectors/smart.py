"""SMART: submodular task mixtures, then non-redundant records within each task
(Renduchintala et al., Findings ACL 2024; ALGORITHMS.md §5).

Why two stages: proportional mixing gives a family of near-duplicate tasks as much budget as its
combined size, equal mixing as much as its member count. Ranking tasks by the marginal gain of a
submodular function over task embeddings instead credits a task only for what the tasks already
chosen do not cover, so redundant tasks share a budget. Inside a task, facility location picks
records that represent the rest rather than repeat each other.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from curate.algorithms.submodular import cosine_kernel, knn_kernel, make_function, maximize
from curate.algorithms.transport import knn_search
from curate.errors import InputError
from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register
from curate.selectors.stratified import strata_labels

Function = Literal["fl", "gc", "logdet"]


class SmartParams(SelectorParams):
    by: Literal["auto", "domain", "cluster"] = Field("auto", description="Tasks: domain column, clusters, or auto.")
    compat: Literal["none", "reference"] = Field(
        "none",
        description="reference: graph cut λ=0.4 over tasks on raw (uncentred, unclipped) cosine, raw gains, "
        "temperature 1, ties to the larger index.",
    )
    task_function: Function | None = Field(None, description="Submodular function over tasks (default fl).")
    instance_function: Function = Field("fl", description="Submodular function over a task's records.")
    num_tasks: int | None = Field(None, ge=1, description="Keep only the top-m tasks (task pruning); default all.")
    gc_lambda: float = Field(0.4, ge=0, le=0.5, description="Graph-cut λ (≤ 0.5 keeps it monotone).")
    logdet_lambda: float = Field(1.0, gt=0, description="Log-determinant ridge λ.")
    gain_normalization: Literal["none", "singleton", "max", "sum"] | None = Field(
        None,
        description="Task gains before the Taylor softmax; singleton (default) = share of a task's own value "
        "that is new, so gains ∈ [0, 1] and do not depend on the number of tasks; reference: none.",
    )
    temperature: float | None = Field(
        None, gt=0, description="Taylor-softmax temperature (default 0.25 on normalised gains; reference 1)."
    )
    allocation: Literal["proportional", "multinomial"] = Field(
        "proportional", description="Budget split: deterministic (reference) or a multinomial draw."
    )
    optimizer: Literal["auto", "lazy", "naive", "stochastic"] = Field(
        "auto", description="Within-task greedy; auto = lazy on dense kernels, stochastic on large tasks."
    )
    epsilon: float = Field(0.01, gt=0, lt=1, description="Stochastic greedy ε.")
    dense_max: int = Field(5000, ge=2, description="Largest task with a dense n×n kernel; beyond: sparse kNN kernel.")
    knn: int = Field(50, ge=2, description="Neighbours per record in the sparse kernel.")

    def resolved(self) -> dict:
        ref = self.compat == "reference"
        return {
            "task_function": self.task_function or ("gc" if ref else "fl"),
            "gain_normalization": self.gain_normalization or ("none" if ref else "singleton"),
            "temperature": self.temperature or (1.0 if ref else 0.25),
            "clip": not ref,
            "center": not ref,
            "tie_break": "largest_index" if ref else "smallest_index",
        }


def taylor_softmax(gains: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Second-order Taylor softmax: p ∝ 1 + g/T + (g/T)²/2 — always positive, polynomial in g."""
    z = np.asarray(gains, np.float64) / temperature
    w = 1.0 + z + z * z / 2.0
    return w / w.sum()


def budget_split(total: int, proportions: np.ndarray) -> np.ndarray:
    """floor(total·p), then the remainder one unit each, round-robin from the first (greedy-first)
    task — the reference's rule, not largest remainder (§5.3 step 5)."""
    p = np.asarray(proportions, np.float64)
    b = np.floor(total * p / p.sum()).astype(np.int64)
    left = total - int(b.sum())
    b[: left % len(b)] += 1
    b += left // len(b)
    return b


def repair_capacity(budgets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Cap every task at its size; hand the excess back one unit per task per sweep, in greedy
    order, to tasks with room (§5.3 step 6) — whole sweeps at once, so it is O(#tasks) per round."""
    b = np.minimum(budgets, capacity).astype(np.int64)
    excess = int((budgets - b).sum())
    if excess > int((capacity - b).sum()):
        raise InputError("the selected tasks hold fewer records than the budget; raise num_tasks", field="num_tasks")
    while excess:
        room = np.flatnonzero(b < capacity)
        sweeps = min(excess // len(room), int((capacity - b)[room].min()))
        if sweeps:
            b[room] += sweeps
            excess -= sweeps * len(room)
        else:
            b[room[:excess]] += 1
            excess = 0
    return b


def task_means(emb: np.ndarray, codes: np.ndarray, n_tasks: int, block: int = 65_536) -> np.ndarray:
    """Mean embedding per task, accumulated over row blocks of a (memory-mapped) matrix."""
    sums = np.zeros((n_tasks, emb.shape[1]))
    for start in range(0, len(codes), block):
        c = codes[start : start + block]
        onehot = sp.csr_matrix((np.ones(len(c)), (c, np.arange(len(c)))), shape=(n_tasks, len(c)))
        sums += onehot @ np.asarray(emb[start : start + block], np.float64)
    return sums / np.maximum(np.bincount(codes, minlength=n_tasks), 1)[:, None]


def normalise_gains(gains: np.ndarray, singletons: np.ndarray, how: str) -> np.ndarray:
    if how == "singleton":
        return gains / np.maximum(singletons, 1e-12)
    if how == "max":
        return gains / max(float(np.abs(gains).max()), 1e-12)
    if how == "sum":
        return gains / max(float(np.abs(gains).sum()), 1e-12)
    return gains


@register
class SmartSelector(Selector):
    name = "smart"
    description = (
        "Submodular task mixture (budget split from greedy gains, redundant tasks share) and "
        "facility-location records within each task; manifest carries the mixture."
    )
    Params = SmartParams

    def select(self, ctx: SelectionContext) -> Selection:
        p, r = self.params, self.params.resolved()
        codes, names = strata_labels(ctx, p.by)
        sizes = np.bincount(codes, minlength=len(names))
        emb = ctx.pool.embeddings()
        ctx.progress(0.1, "task stage")
        order, gains, budgets = self.task_budgets(emb, codes, sizes, ctx)
        picks, scores, weights, objective = [], [], [], {}
        by_task = np.argsort(codes, kind="stable")
        starts = np.concatenate(([0], np.cumsum(sizes)))
        for step, t in enumerate(order):
            b = int(budgets[t])
            if b == 0:
                continue
            ctx.progress(0.2 + 0.8 * step / len(order), f"task {names[t]}")
            rows = by_task[starts[t] : starts[t + 1]]
            local, gain, w = self.within_task(np.asarray(emb[rows], np.float32), b, ctx.rng(1 + int(t)))
            picks.append(rows[local])
            scores.append(gain)
            weights.append(w)
            objective[names[t]] = round(float(gain.sum()), 6)
        total = max(int(budgets.sum()), 1)
        mixture = {names[t]: float(budgets[t] / total) for t in order if budgets[t] > 0}
        metrics = {
            "tasks": len(names),
            "task_order": [names[t] for t in order],
            "task_gains": [round(float(g), 6) for g in gains],
            "task_budgets": {names[t]: int(budgets[t]) for t in order if budgets[t] > 0},
            "objective": round(sum(objective.values()), 6),
            "objective_per_task": objective,
            "task_function": r["task_function"],
        }
        if not picks:
            return Selection(indices=np.zeros(0, np.int64), mixture=mixture or None, metrics=metrics)
        return Selection(
            indices=np.concatenate(picks).astype(np.int64),
            weights=np.concatenate(weights),
            scores=np.concatenate(scores),
            mixture=mixture,
            metrics=metrics,
        )

    def task_budgets(
        self, emb: np.ndarray, codes: np.ndarray, sizes: np.ndarray, ctx: SelectionContext
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(greedy task order, raw gains, per-task budgets summing exactly to ctx.budget)."""
        p, r = self.params, self.params.resolved()
        means = task_means(emb, codes, len(sizes))
        if r["center"]:  # drop the direction every task shares (embedding anisotropy): cosines of
            means = means - means.mean(axis=0)  # raw means are all ≈ 0.8+, hiding which tasks are alike
        kernel = cosine_kernel(means, clip=r["clip"])
        lam = p.gc_lambda if r["task_function"] == "gc" else p.logdet_lambda
        fn = make_function(r["task_function"], kernel, lam)
        m = min(p.num_tasks or len(sizes), len(sizes))
        result = maximize(fn, m, "naive", tie_break=r["tie_break"])
        order, gains = result.order, result.gains
        singles = make_function(r["task_function"], kernel, lam).gains(order)
        probs = taylor_softmax(normalise_gains(gains, singles, r["gain_normalization"]), r["temperature"])
        if int(sizes[order].sum()) < ctx.budget:
            raise InputError(
                f"the top {m} tasks hold {int(sizes[order].sum())} records, fewer than the budget {ctx.budget}",
                field="num_tasks",
            )
        if p.allocation == "multinomial":
            split = ctx.rng(0).multinomial(ctx.budget, probs)
        else:
            split = budget_split(ctx.budget, probs)
        budgets = np.zeros(len(sizes), np.int64)
        budgets[order] = repair_capacity(split, sizes[order])
        return order, gains, budgets

    def within_task(
        self, x: np.ndarray, b: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chosen local rows in greedy order, their gains, weights = task records each one stands
        for, scaled to mean 1 within the task so the weights keep the mixture's proportions)."""
        p, r = self.params, self.params.resolved()
        dense = len(x) <= p.dense_max
        kernel = cosine_kernel(x, clip=True) if dense else knn_kernel(x, p.knn)
        lam = p.gc_lambda if p.instance_function == "gc" else p.logdet_lambda
        fn = make_function(p.instance_function, kernel, lam)
        optimizer = p.optimizer if p.optimizer != "auto" else ("lazy" if dense else "stochastic")
        result = maximize(fn, b, optimizer, rng=rng, epsilon=p.epsilon, tie_break=r["tie_break"])
        _, nearest = knn_search(x[result.order], x, 1)
        counts = np.bincount(nearest[:, 0], minlength=len(result.order)).astype(np.float64)
        return result.order, result.gains, np.maximum(counts, 1.0) * len(result.order) / len(x)
