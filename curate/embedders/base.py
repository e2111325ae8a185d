"""The embedder interface: texts in, float32 L2-normalised rows out, plus a key naming the space.

Backends are interchangeable like selectors (one file each), but their vectors are not: the
same text under a static model, an int8 network and the fp32 network gives three different
vectors. ``cache_id`` names the vector space, and the embedding cache is split by it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from itertools import chain
from pathlib import Path
from typing import ClassVar

import numpy as np


class Embedder(ABC):
    backend: ClassVar[str]
    # Texts per encode call in the embed stage: the unit of work, of progress and of an
    # interrupted run's loss. Network backends sort each call by length, so not too small.
    unit_rows: ClassVar[int] = 2048

    cache_id: str  # the vector space: equal ids promise interchangeable vectors
    device: str  # what actually runs ("cpu", "cuda")

    @abstractmethod
    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""


def normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def load_tokenizer(folder: Path, max_length: int | None):
    """The model's fast tokenizer without padding (tokenizer.json files often pin a fixed pad length)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length)
    else:
        tok.no_truncation()
    return tok


def token_ids(tok, texts: list[str], special: bool) -> tuple[np.ndarray, np.ndarray]:
    """Flat token ids and per-text offsets (CSR layout) of a batch, tokenised in parallel in Rust."""
    encs = tok.encode_batch_fast(texts, add_special_tokens=special)
    lengths = np.fromiter((len(e.ids) for e in encs), np.int64, len(encs))
    offsets = np.zeros(len(encs) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter(chain.from_iterable(e.ids for e in encs), np.int64, int(offsets[-1]))
    return ids, offsets
