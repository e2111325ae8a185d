"""A real training loop driven by an online-mixing session: the tiny proxy LM asks the session for each
batch, takes one optimiser step on it, and reports the batch's per-domain training losses back.

This is the loop ODM (ALGORITHMS.md §4) was designed for, with a real gradient-trained model in place
of the simulator: the reward is the per-domain training loss of the step's own forward pass (as in the
paper), so what the bandit sees is what a training job would see. Fixed mixtures (uniform, pool share)
run through the same code path: a session whose warm-up outlasts the run never updates its initial
mixture, so every method draws its batches from the server the same way and only the weights differ.

Validation is the mean over domains of each domain's held-out token loss (every domain counts the same,
whatever its pool share), evaluated every ``eval_every`` steps on fixed texts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from curate.client.mixing import MixingSession
from curate.eval.params import EvalParams
from curate.eval.tokenize import Vocab, framed
from curate.eval.torch_lm import pad_rows, token_nll

PAD, UNK, BOS, EOS = 0, 1, 2, 3
_SPECIAL = 4


class TrainerParams(BaseModel):
    """The proxy LM and its optimiser; one definition for the example, the benchmark and the test."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(300, ge=1, description="Optimiser steps (one session step each).")
    batch_size: int = Field(32, ge=1, description="Sequences per step.")
    layers: int = Field(2, ge=1, le=8, description="GPT-2 decoder blocks.")
    width: int = Field(64, ge=16, le=512, description="Hidden size (heads of 32 dims).")
    learning_rate: float = Field(3e-3, gt=0, description="Peak AdamW learning rate.")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="Cosine decay to this fraction of the peak (the paper: 2.5e-4 → 2.5e-5)."
    )
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="Linear learning-rate warm-up, share of steps.")
    max_tokens: int = Field(48, ge=4, le=512, description="WordPiece tokens kept per text.")
    vocab_size: int = Field(2048, ge=16, description="Most frequent tokens of the reference texts kept; rest → UNK.")
    eval_every: int = Field(20, ge=1, description="Validate every this many steps (and at steps 0 and the last).")
    seed: int = Field(0, ge=0, description="Model initialisation.")


class TokenMap:
    """WordPiece ids → a compact vocabulary: the ``size`` most frequent tokens of reference texts.

    A training job fixes its tokenizer before it sees any batch; the batches come from the server
    one at a time, so the vocabulary is built once from texts the caller has (typically the corpus
    the pool was ingested from). A compact softmax is what makes a CPU step cheap.
    """

    def __init__(self, reference_texts: Sequence[str], size: int, max_tokens: int) -> None:
        self.wordpiece = Vocab(max_tokens)
        ids, _ = self.wordpiece.encode(list(reference_texts))
        counts = np.bincount(ids, minlength=self.wordpiece.size)
        keep = np.argsort(-counts, kind="stable")[:size]
        keep = keep[counts[keep] > 0]
        self.table = np.full(self.wordpiece.size, UNK, np.int64)
        self.table[keep] = np.arange(_SPECIAL, _SPECIAL + len(keep))
        self.size = _SPECIAL + len(keep)
        covered = counts[keep].sum() / max(1, counts.sum())
        self.coverage = float(covered)  # share of reference tokens not mapped to UNK

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), each text as ``[BOS] tokens [EOS]``, right-padded; no loop per text."""
        ids, offsets = self.wordpiece.encode(list(texts))
        tokens, _, _ = framed(self.table[ids], offsets, 1, BOS, EOS)
        return pad_rows(tokens, np.diff(offsets) + 2)  # pads with 0 = PAD


class ProxyTrainer:
    """The tiny causal transformer of ``curate eval`` (GPT-2 blocks, random init) with AdamW and a
    warm-up + cosine schedule over a known step budget."""

    def __init__(self, tokens: TokenMap, params: TrainerParams) -> None:
        import torch

        from curate.eval.torch_lm import build_model

        self.tokens, self.params = tokens, params
        arch = EvalParams(proxy="transformer", layers=params.layers, width=params.width, seed=params.seed)
        self.model = build_model(tokens.size, arch, params.max_tokens + 2, params.seed)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=params.learning_rate, weight_decay=0.01)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.steps_done = 0

    def _lr_factor(self, step: int) -> float:
        p = self.params
        warm = max(1, round(p.warmup_fraction * p.steps))
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, p.steps - warm))
        return p.min_lr_ratio + (1 - p.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def step(self, texts: Sequence[str], groups: Sequence[str]) -> dict[str, float]:
        """One optimiser step on ``texts``; returns each group's mean token loss from this step's forward
        pass (before the update, as the paper's reward), so the bandit costs no extra forward pass."""
        import torch

        ids, mask = self.tokens.encode(texts)
        names, code = np.unique(np.asarray(groups), return_inverse=True)
        self.model.train()
        nll, count = token_nll(self.model, torch.from_numpy(ids), torch.from_numpy(mask))
        loss = nll.sum() / count.sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.steps_done += 1
        code_t = torch.from_numpy(code.astype(np.int64))
        per_nll = torch.bincount(code_t, weights=nll.detach().double(), minlength=len(names))
        per_tok = torch.bincount(code_t, weights=count.double(), minlength=len(names))
        return {str(n): float(v) for n, v in zip(names, (per_nll / per_tok).tolist(), strict=True)}

    def loss_of(self, ids: np.ndarray, mask: np.ndarray, chunk: int = 64) -> float:
        """Mean token loss of pre-encoded texts, without gradients."""
        import torch

        self.model.eval()
        total = tokens = 0.0
        with torch.no_grad():
            for start in range(0, len(ids), chunk):
                part = slice(start, start + chunk)
                width = int(mask[part].sum(axis=1).max())  # drop all-pad columns of this chunk
                a, b = token_nll(self.model, torch.from_numpy(ids[part, :width]), torch.from_numpy(mask[part, :width]))
                total, tokens = total + float(a.sum()), tokens + float(b.sum())
        return total / max(tokens, 1.0)


class Validation:
    """Held-out texts per domain, encoded once, sorted by length so chunks carry little padding."""

    def __init__(self, tokens: TokenMap, texts_by_domain: dict[str, Sequence[str]]) -> None:
        if not texts_by_domain or any(len(t) == 0 for t in texts_by_domain.values()):
            raise ValueError("validation needs at least one text for every domain")
        self.sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, texts in sorted(texts_by_domain.items()):
            ids, mask = tokens.encode(texts)
            order = np.argsort(mask.sum(axis=1), kind="stable")
            self.sets[name] = (ids[order], mask[order])

    def evaluate(self, trainer: ProxyTrainer) -> dict:
        """``loss``: the mean over domains of each domain's mean token loss (uniform over domains)."""
        per = {name: trainer.loss_of(ids, mask) for name, (ids, mask) in self.sets.items()}
        return {"loss": float(np.mean(list(per.values()))), "per_domain": per}


METHODS = ("uniform", "proportional", "odm")


def session_params(method: str, steps: int, micro_batches: int = 1, warmup_steps: int | None = None) -> dict:
    """Session parameters of each method for a run of ``steps`` steps.

    ``uniform`` and ``proportional`` (each domain's pool share) are sessions whose warm-up outlasts the
    run, so the bandit never updates and their batches are drawn exactly as odm's are. ``odm`` is the
    bandit with the service defaults (paper form, α = 0.9), started, as the paper's runs, from the
    natural mixture, with the reference scripts' warm-up ratio (2 000 of 100 000 steps: 2 %).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}': one of {', '.join(METHODS)}")
    if method == "odm":
        warm = max(1, steps // 50) if warmup_steps is None else warmup_steps
        return {"variant": "paper", "init": "records", "warmup_steps": warm, "micro_batches": micro_batches}
    init = "uniform" if method == "uniform" else "records"
    return {"init": init, "warmup_steps": steps, "micro_batches": micro_batches}


@dataclass
class StepRecord:
    step: int
    sampling_weights: dict[str, float]
    micro_batches: list[dict]
    ids: list[str]
    groups: list[str]
    losses: dict[str, float]
    weights_after: dict[str, float]
    updated: bool


@dataclass
class RunLog:
    steps: list[StepRecord] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)  # {"step", "loss", "per_domain"}
    seconds: dict[str, float] = field(default_factory=lambda: {"train": 0.0, "rest": 0.0, "validate": 0.0})

    def mean_mixture(self) -> dict[str, float]:
        """Time-average of the sampling weights the batches were drawn with."""
        names = sorted(self.steps[0].sampling_weights)
        probs = np.array([[s.sampling_weights[n] for n in names] for s in self.steps])
        return {n: float(p) for n, p in zip(names, probs.mean(axis=0), strict=True)}


def train_with_session(
    session: MixingSession, trainer: ProxyTrainer, validation: Validation | None, steps: int | None = None
) -> RunLog:
    """``steps`` (default the trainer's budget) rounds of next → one optimiser step → feedback.

    Validation runs at step 0, every ``eval_every`` steps and after the last step.
    """
    p = trainer.params
    steps = p.steps if steps is None else steps
    log = RunLog()

    def validate(at: int) -> None:
        if validation is not None:
            t0 = time.perf_counter()
            log.curve.append({"step": at, **validation.evaluate(trainer)})
            log.seconds["validate"] += time.perf_counter() - t0

    validate(0)
    for done in range(1, steps + 1):
        t0 = time.perf_counter()
        batch = session.next(p.batch_size, with_text=True)
        t1 = time.perf_counter()
        losses = trainer.step(batch.texts, batch.groups)
        t2 = time.perf_counter()
        answer = session.feedback(losses, step=batch.step)
        t3 = time.perf_counter()
        log.seconds["rest"] += (t1 - t0) + (t3 - t2)
        log.seconds["train"] += t2 - t1
        log.steps.append(
            StepRecord(
                step=batch.step,
                sampling_weights=batch.weights,
                micro_batches=batch.micro_batches,
                ids=batch.ids,
                groups=batch.groups,
                losses=losses,
                weights_after=answer["weights"],
                updated=bool(answer["updated"]),
            )
        )
        if done % p.eval_every == 0 or done == steps:
            validate(done)
    return log


def steps_to_reach(curve: Sequence[dict], target: float) -> float | None:
    """First step at which the validation curve reaches ``target``, linearly interpolated between the
    evaluations around the crossing (evaluations are ``eval_every`` apart); None if never reached."""
    steps = np.array([c["step"] for c in curve], np.float64)
    loss = np.array([c["loss"] for c in curve], np.float64)
    hit = np.flatnonzero(loss <= target)
    if len(hit) == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(steps[0])
    drop = loss[i - 1] - loss[i]
    frac = 1.0 if drop <= 0 else (loss[i - 1] - target) / drop
    return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))
