"""``torch``: the sentence-transformers model as published, fp32; the reference every backend is measured against."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from curate.embedders.base import Embedder, normalise_rows
from curate.embedders.models import model_key, resolve_device


@lru_cache(maxsize=2)
def load_model(path: Path, max_seq_length: int | None = None, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own progress reporting is per record, not per weight file
    model = SentenceTransformer(str(path), device=device)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def space_id(path: Path, max_seq_length: int | None, suffix: str = "") -> str:
    """The cache namespace of a network backend: weights, truncation and numeric variant."""
    base = model_key(path)[:24]  # bare for the default torch space: caches made before backends stay valid
    return base + (f"-len{max_seq_length}" if max_seq_length else "") + suffix


class TorchEmbedder(Embedder):
    backend = "torch"

    def __init__(self, path: Path, batch_size: int, max_seq_length: int | None, device: str) -> None:
        self.device = resolve_device(device)
        self.model = load_model(path, max_seq_length, self.device)
        self.batch_size = batch_size
        self.cache_id = space_id(path, max_seq_length)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise_rows(out)
