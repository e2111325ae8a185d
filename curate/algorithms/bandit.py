"""EXP3 online data mixing (ODM, Albalak et al. 2023) as a pure, seeded, checkpointable object.

Each domain is a bandit arm; the training loss observed on a domain's batch is its reward, so the
mixture leans toward what the model still finds hard. No I/O here: the REST sessions
(:mod:`curate.mixing`) persist :meth:`OnlineMixer.state_dict` in the catalog and call
:meth:`OnlineMixer.observe` under a lock, so several processes can serve one session.

The paper's equations and the published GPT-NeoX code are different algorithms (ALGORITHMS.md
§4.3), hence an explicit ``variant`` that is recorded with every session and manifest:

* ``paper`` – importance-weighted EMA reward ``R̂ ← αR̂ + (1−α)L/π``, exp-weights policy.
* ``code_exp3`` – cumulative ``R̂ ← R̂ + (L/10)/π`` (``Exp3WeightUpdater``), same policy.
* ``code_smoothed_mean`` – ``R̂ ← αR̂ + (1−α)exp(L)`` without importance weighting, same policy.
* ``code_smoothed_mean_group`` – the same reward per domain of a mixed batch, **linear** policy
  ``π ∝ R̂`` (mixed with the ε floor).
* ``code_ema`` – ``w ← (2/(1+t))L + (1−2/(1+t))w``, ``π ∝ w``, no exploration floor.

Policy of the exp-weights variants after the update at step ``t`` (the *previous* ε is the
temperature, the *current* ε the uniform floor, so Σπ = 1 and π ≥ ε_t by construction)::

    ε_t = min(1/K, sqrt(ln K / (K t)))
    π_t = (1 − K ε_t) softmax(ε_{t−1} R̂) + ε_t
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

Variant = Literal["paper", "code_exp3", "code_smoothed_mean", "code_smoothed_mean_group", "code_ema"]
VARIANTS: tuple[str, ...] = Variant.__args__  # type: ignore[attr-defined]
_EXP_WEIGHTS = ("paper", "code_exp3", "code_smoothed_mean")
_PROB_CLIP = 1e-8  # importance ratios divide by π; never by (almost) zero


class BanditParams(BaseModel):
    """Everything that shapes the trajectory besides the domains, the prior weights and the seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Variant = Field("paper", description="Reward/policy form; see ALGORITHMS.md §4.3.")
    alpha: float = Field(0.9, ge=0.0, lt=1.0, description="Reward smoothing factor (reference 0.9).")
    warmup_steps: int = Field(
        2000, ge=0, description="Steps drawn from the initial mixture with no update (reference scripts: 2000)."
    )
    update_every: int = Field(1, ge=1, description="Update when step > warmup and step % update_every == 0.")
    reward_scale: float | None = Field(
        None, gt=0.0, description="Loss multiplier before the update; default 0.1 for code_exp3, else 1."
    )
    t_origin: Literal["global", "post_warmup"] = Field(
        "global", description="Step origin of ε_t; post_warmup keeps exploration high for longer."
    )
    min_eps: float = Field(0.0, ge=0.0, description="Floor on ε_t for very long runs (0 = reference).")
    min_prob: float = Field(0.0, ge=0.0, lt=1.0, description="Every domain's probability stays ≥ this.")
    prior: bool = Field(
        False,
        description="Keep the initial weights as a prior after warm-up (logits log w + ε R̂); not reference.",
    )

    @property
    def scale(self) -> float:
        if self.reward_scale is not None:
            return self.reward_scale
        return 0.1 if self.variant == "code_exp3" else 1.0

    @model_validator(mode="after")
    def _consistent(self) -> BanditParams:
        if self.min_eps > 0 and self.variant == "code_ema":
            raise ValueError("min_eps has no effect on code_ema (it has no exploration floor); use min_prob")
        return self


def epsilon(t: int, k: int, min_eps: float = 0.0) -> float:
    """Exploration rate ``min(1/K, sqrt(ln K / (K t)))``; ``t ≤ 0`` is the initial ``1/K``."""
    if k <= 1:
        return 0.0
    if t <= 0:
        return 1.0 / k
    return max(min_eps, min(1.0 / k, math.sqrt(math.log(k) / (k * t))))


def apply_floor(p: np.ndarray, floor: float) -> np.ndarray:
    """Lift entries below ``floor`` to it, shrinking the others proportionally (their ratios kept)."""
    p = np.asarray(p, np.float64)
    if floor <= 0 or p.min() >= floor:
        return p
    low = np.zeros(len(p), bool)
    while True:
        rest = ~low
        if not rest.any():
            return np.full(len(p), 1.0 / len(p))
        scaled = p[rest] * (1.0 - floor * low.sum()) / p[rest].sum()
        grow = scaled < floor
        if not grow.any():
            out = np.full(len(p), floor)
            out[rest] = scaled
            return out
        low[np.flatnonzero(rest)[grow]] = True


class MixingParams(BanditParams):
    """Session parameters: the bandit's, plus how its prior and its batches are formed."""

    init: Literal["uniform", "records", "tokens"] = Field(
        "uniform", description="Initial mixture: uniform (reference), by record count, or by whitespace tokens."
    )
    init_weights: dict[str, float] | None = Field(
        None, description="Explicit initial weights per group (overrides init); normalised."
    )
    micro_batches: int = Field(
        1, ge=1, description="Domain draws per step: 1 = one domain per batch (paper), > 1 = mixed minibatches."
    )
    step_timeout_s: float | None = Field(
        30.0,
        gt=0,
        description="A handed-out step with no feedback after this many seconds is skipped (not applied) once a "
        "later step reports, so a worker that died mid-step cannot block the session; null = wait forever.",
    )

    def bandit(self) -> BanditParams:
        return BanditParams(**{k: getattr(self, k) for k in BanditParams.model_fields})


class OnlineMixer:
    """The bandit over ``K`` domains; all randomness comes from ``seed`` and a draw counter.

    ``observe`` must be called with strictly increasing steps; the same seed, prior and sequence
    of ``sample``/``observe`` calls always yields the same probabilities and the same draws.
    """

    def __init__(
        self, n_arms: int, params: BanditParams | None = None, init_weights: Sequence[float] | None = None, seed=0
    ) -> None:
        if n_arms < 1:
            raise ValueError("a mixer needs at least one domain")
        self.k = int(n_arms)
        self.params = params or BanditParams()
        if self.params.min_prob * self.k > 1.0 + 1e-12:
            raise ValueError(f"min_prob {self.params.min_prob} × {self.k} domains exceeds 1")
        w = np.ones(self.k) if init_weights is None else np.asarray(init_weights, np.float64)
        if w.shape != (self.k,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("init_weights must be K finite non-negative numbers, not all zero")
        self.init = w / w.sum()
        self.seed = int(seed)
        # The EMA variant's policy is π ∝ w: start w at the prior so the first update is not degenerate.
        self.estimates = self.init.copy() if self.params.variant == "code_ema" else np.zeros(self.k)
        self.probs_ = apply_floor(self.init, self.params.min_prob)
        self.eps = 1.0 / self.k  # ε_0; the temperature of the first post-warm-up update
        self.last_step = 0
        self.draws = 0
        self.updates = 0

    # --- policy ------------------------------------------------------------------------------

    def probs(self) -> np.ndarray:
        return self.probs_.copy()

    def sample(self, n: int) -> np.ndarray:
        """``n`` i.i.d. domain ids from the current π (one per micro-batch)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.draws]))
        self.draws += 1
        cdf = np.cumsum(self.probs_)  # inverse-CDF draw: Generator.choice(p=) costs ~10× more per call
        return np.minimum(np.searchsorted(cdf, rng.random(int(n)) * cdf[-1], side="right"), self.k - 1)

    def is_update_step(self, step: int) -> bool:
        p = self.params
        return step > p.warmup_steps and step % p.update_every == 0

    def observe(
        self,
        step: int,
        arms: Sequence[int],
        losses: Sequence[float],
        sampling_probs: Sequence[float] | None = None,
    ) -> bool:
        """Feed the mean loss of each domain present in ``step``'s batch; True if π was updated.

        ``sampling_probs`` is π at the time the batch was drawn (pitfall 4: the importance weight
        uses the probability the domain was sampled with); default the current π.
        """
        step = int(step)
        if step <= self.last_step:
            raise ValueError(f"steps must increase: got {step} after {self.last_step}")
        arms = np.asarray(arms, np.int64)
        losses = np.asarray(losses, np.float64)
        if arms.ndim != 1 or arms.shape != losses.shape or len(arms) == 0:
            raise ValueError("arms and losses must be equally long, non-empty 1-d sequences")
        if len(set(arms.tolist())) != len(arms) or arms.min() < 0 or arms.max() >= self.k:
            raise ValueError("arms must be distinct domain ids in [0, K)")
        if not np.all(np.isfinite(losses)):
            raise ValueError("losses must be finite")
        pi = self.probs_ if sampling_probs is None else np.asarray(sampling_probs, np.float64)
        self.last_step = step
        if not self.is_update_step(step):
            return False
        self._update_estimates(step, arms, losses * self.params.scale, pi)
        self._update_policy(step)
        self.updates += 1
        return True

    def _update_estimates(self, step: int, arms: np.ndarray, loss: np.ndarray, pi: np.ndarray) -> None:
        a, variant = self.params.alpha, self.params.variant
        r = self.estimates
        if variant == "paper":
            r[arms] = a * r[arms] + (1 - a) * loss / np.maximum(pi[arms], _PROB_CLIP)
        elif variant == "code_exp3":
            r[arms] += loss / np.maximum(pi[arms], _PROB_CLIP)
        elif variant in ("code_smoothed_mean", "code_smoothed_mean_group"):
            r[arms] = a * r[arms] + (1 - a) * np.exp(loss)
        else:  # code_ema
            g = 2.0 / (1.0 + step)
            r[arms] = g * loss + (1 - g) * r[arms]

    def _update_policy(self, step: int) -> None:
        p, variant = self.params, self.params.variant
        t = step - p.warmup_steps if p.t_origin == "post_warmup" else step
        eps_t = epsilon(t, self.k, p.min_eps)
        if variant in _EXP_WEIGHTS:
            logits = self.eps * self.estimates
            if p.prior:
                logits = logits + np.log(np.maximum(self.init, 1e-300))
            z = np.exp(logits - logits.max())
            base = z / z.sum()
        else:
            total = self.estimates.sum()
            base = self.estimates / total if total > 0 else np.full(self.k, 1.0 / self.k)
            if variant == "code_ema":
                eps_t = 0.0
        pi = (1.0 - self.k * eps_t) * base + eps_t
        self.probs_ = apply_floor(pi / pi.sum(), p.min_prob)
        if variant != "code_ema":
            self.eps = eps_t

    # --- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """JSON-safe state; with the constructor arguments it restores the exact continuation."""
        return {
            "k": self.k,
            "seed": self.seed,
            "params": self.params.model_dump(mode="json"),
            "init": self.init.tolist(),
            "estimates": self.estimates.tolist(),
            "probs": self.probs_.tolist(),
            "eps": self.eps,
            "last_step": self.last_step,
            "draws": self.draws,
            "updates": self.updates,
        }

    @classmethod
    def from_state(cls, state: dict) -> OnlineMixer:
        mixer = cls(state["k"], BanditParams(**state["params"]), state["init"], state["seed"])
        mixer.load_state_dict(state)
        return mixer

    def load_state_dict(self, state: dict) -> None:
        if state["k"] != self.k:
            raise ValueError(f"state has {state['k']} domains, mixer has {self.k}")
        self.estimates = np.asarray(state["estimates"], np.float64)
        self.probs_ = np.asarray(state["probs"], np.float64)
        self.eps = float(state["eps"])
        self.last_step = int(state["last_step"])
        self.draws = int(state["draws"])
        self.updates = int(state["updates"])


def replay(log: pl.DataFrame, n_arms: int, params: BanditParams, init_weights=None, seed: int = 0) -> pl.DataFrame:
    """Recompute the π trajectory from a logged run: columns ``step, arm, loss`` (+ optional ``prob``,
    the sampling probability of that arm at that step, needed only when batches were drawn ahead
    of the feedback). Returns ``step, updated, probs`` (π after each logged step)."""
    mixer = OnlineMixer(n_arms, params, init_weights, seed)
    has_prob = "prob" in log.columns
    rows = []
    for (step,), part in log.sort("step", maintain_order=True).group_by("step", maintain_order=True):
        arms = part["arm"].to_numpy()
        pi = None
        if has_prob:
            pi = mixer.probs()
            pi[arms] = part["prob"].to_numpy()
        updated = mixer.observe(int(step), arms, part["loss"].to_numpy(), pi)
        rows.append({"step": int(step), "updated": updated, "probs": mixer.probs().tolist()})
    return pl.DataFrame(rows, schema={"step": pl.Int64, "updated": pl.Boolean, "probs": pl.List(pl.Float64)})


def simulate(
    mixer: OnlineMixer,
    loss_fn: Callable[[int, np.ndarray, np.random.Generator], float],
    steps: Sequence[int] | range,
    seed: int = 0,
    micro_batches: int = 1,
) -> pl.DataFrame:
    """Drive ``mixer`` with a synthetic trainer: each step draws ``micro_batches`` domains with
    ``Generator.choice(K, p=π)`` from the simulator's own seeded RNG, asks ``loss_fn(arm, counts,
    rng)`` for each micro-batch's loss (``counts`` = batches seen per domain so far) and feeds the
    per-domain mean. One row per step: ``step, arms, probs`` (π used to draw the step) and the
    observations fed to the mixer, ``arm, loss`` (lists; ``explode`` them to get a replay log)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(mixer.k, np.int64)
    cols: dict[str, list] = {"step": [], "arms": [], "probs": [], "arm": [], "loss": []}
    for step in steps:
        pi = mixer.probs()
        arms = rng.choice(mixer.k, size=micro_batches, p=pi)
        losses = np.array([loss_fn(int(a), counts, rng) for a in arms])
        if micro_batches == 1:
            counts[arms[0]] += 1
            uniq, means = arms, losses
        else:
            np.add.at(counts, arms, 1)
            uniq, inv = np.unique(arms, return_inverse=True)
            means = np.bincount(inv, weights=losses) / np.bincount(inv)
        mixer.observe(int(step), uniq, means, pi)
        for key, value in zip(
            cols, (int(step), arms.tolist(), pi.tolist(), uniq.tolist(), means.tolist()), strict=True
        ):
            cols[key].append(value)
    schema = {"step": pl.Int64, "arms": pl.List(pl.Int64), "probs": pl.List(pl.Float64)}
    return pl.DataFrame(cols, schema={**schema, "arm": pl.List(pl.Int64), "loss": pl.List(pl.Float64)})
