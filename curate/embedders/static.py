"""``static``: one vector per vocabulary token; a text's embedding is the mean of its tokens' vectors.

No network at encode time: tokenise (Rust, parallel), one sparse (texts × vocab) count matrix, one
sparse-dense product, normalise. Hundreds of times the network's speed, for pools of millions.

The model is a folder with ``tokenizer.json`` and ``model.safetensors`` holding an ``embeddings``
tensor (vocab × dim) — model2vec's layout, so a model2vec folder works — or, given a
sentence-transformers model instead, one distilled from it on first use (curate.embedders.distill).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from curate.embedders.base import Embedder, load_tokenizer, normalise_rows, token_ids
from curate.embedders.models import derived_model, model_key
from curate.errors import InputError


def is_static_folder(path: Path) -> bool:
    return (
        (path / "tokenizer.json").exists()
        and (path / "model.safetensors").exists()
        and not (path / "modules.json").exists()
    )


@lru_cache(maxsize=2)
def load_static(path: Path) -> tuple[np.ndarray, dict]:
    from safetensors.numpy import load_file

    tensors = load_file(str(path / "model.safetensors"))
    if set(tensors) != {"embeddings"}:
        raise InputError(
            f"static model '{path}' holds tensors {sorted(tensors)}; expected exactly 'embeddings' (vocab × dim)",
            field="model",
        )
    cfg_file = path / "config.json"
    config = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    return np.ascontiguousarray(tensors["embeddings"], dtype=np.float32), config


class StaticEmbedder(Embedder):
    backend = "static"
    unit_rows = 65_536  # ~1 s of work: per-call overhead vanishes, memory stays ~100 MB

    def __init__(self, path: Path, max_seq_length: int | None) -> None:
        if not is_static_folder(path):
            from curate.embedders.distill import VERSION, distill

            path = derived_model(path, f"static-v{VERSION}", distill)
        self.vectors, config = load_static(path)
        self.max_tokens = max_seq_length or config.get("max_tokens")
        self.tokenizer = load_tokenizer(path, self.max_tokens)
        if self.tokenizer.get_vocab_size() > len(self.vectors):
            raise InputError(
                f"static model '{path}': tokenizer has {self.tokenizer.get_vocab_size()} tokens "
                f"but only {len(self.vectors)} vectors",
                field="model",
            )
        self.unknown = self.tokenizer.token_to_id(config.get("unk_token", "[UNK]"))
        self.device = "cpu"
        self.path = path
        self.cache_id = model_key(path)[:24] + (f"-len{max_seq_length}" if max_seq_length else "") + "-static"

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, offsets = token_ids(self.tokenizer, texts, special=False)
        empty = np.flatnonzero(np.diff(offsets) == 0)
        if len(empty) and self.unknown is not None:  # a text with no tokens gets [UNK]'s vector, not zeros
            ids = np.insert(ids, offsets[empty], self.unknown)
            offsets = offsets + np.searchsorted(empty, np.arange(len(offsets)), side="left")
        counts = sp.csr_matrix((np.ones(len(ids), np.float32), ids, offsets), shape=(len(texts), len(self.vectors)))
        # The sum, not the mean: the normalisation that follows makes them the same direction.
        return normalise_rows(counts @ self.vectors)
