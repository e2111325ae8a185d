"""Embedding backends behind one interface (``Embedder``); ``get_embedder(params)`` picks one.

| backend     | what runs                                    | when                                      |
|-------------|----------------------------------------------|-------------------------------------------|
| torch       | the sentence-transformers model, fp32        | default; the reference                    |
| onnx        | the same network in ONNX Runtime, fp32       | same vectors (cos > 0.9999), a bit faster |
| onnx-int8   | ONNX Runtime, per-channel int8 weights       | ~2-3× faster, cos ≈ 0.99 to torch         |
| static      | token-vector lookup + mean (distilled)       | pools of millions; coarser neighbours     |

docs/embeddings.md has the measured speed and quality of each.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from curate.embedders.base import Embedder
from curate.embedders.models import resolve_model

if TYPE_CHECKING:
    from curate.stages.embed import EmbedParams


@lru_cache(maxsize=4)
def get_embedder(params: EmbedParams) -> Embedder:
    """One loaded embedder per distinct parameter set and process (a model loads once)."""
    path = resolve_model(params.model)
    if params.backend == "static":
        from curate.embedders.static import StaticEmbedder

        return StaticEmbedder(path, params.max_seq_length)
    if params.backend in ("onnx", "onnx-int8"):
        from curate.embedders.onnx import OnnxEmbedder

        return OnnxEmbedder(
            path, params.batch_size, params.max_seq_length, params.device, int8=params.backend == "onnx-int8"
        )
    from curate.embedders.transformer import TorchEmbedder

    return TorchEmbedder(path, params.batch_size, params.max_seq_length, params.device)


__all__ = ["Embedder", "get_embedder"]
