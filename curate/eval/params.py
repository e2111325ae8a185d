"""The parameters of a downstream eval, defined once for ``curate eval``, the REST route and the benchmarks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalParams(BaseModel):
    """How the proxy LM is trained on a manifest (and on random subsets of its size) and scored on a target.

    The n-gram proxy is the default because it is deterministic and trains in seconds on a CPU, so a
    selection and several random subsets fit in one run; the transformer proxy is a real (tiny)
    gradient-trained causal LM for when the question is about a neural model's loss.
    """

    model_config = ConfigDict(extra="forbid")

    proxy: Literal["ngram", "transformer"] = Field(
        "ngram", description="Proxy LM: smoothed n-gram or tiny transformer."
    )
    order: int = Field(3, ge=1, le=4, description="n-gram order (interpolated Witten-Bell smoothing).")
    random_seeds: int = Field(8, ge=3, le=32, description="Random subsets of the manifest's size from its pool.")
    max_target_texts: int = Field(2_000, ge=10, le=100_000, description="Target texts scored (a seeded sample).")
    max_tokens: int = Field(128, ge=8, le=512, description="Tokens kept per text (train and target).")
    weighted: bool = Field(True, description="Honour the manifest's weights (n-gram counts / sampling ∝ weight).")
    decontaminate: bool = Field(True, description="Drop training records whose text is also a target text.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Level of every confidence interval.")
    bootstrap: int = Field(1_000, ge=100, le=10_000, description="Bootstrap replicates (target texts and seeds).")
    seed: int = Field(0, ge=0, description="Seeds random subsets, the target sample, the bootstrap and training.")
    steps: int = Field(300, ge=1, le=20_000, description="transformer: optimiser steps.")
    batch_size: int = Field(32, ge=1, le=1_024, description="transformer: sequences per step.")
    layers: int = Field(2, ge=1, le=8, description="transformer: decoder blocks.")
    width: int = Field(64, ge=16, le=512, description="transformer: hidden size (heads of 32 dims).")
    learning_rate: float = Field(3e-3, gt=0, le=1.0, description="transformer: AdamW learning rate.")
