"""Distil a static model from a sentence-transformers model, offline, from its weights alone.

The idea is model2vec's (Tulkens & van Dongen, 2024): a token's vector is the teacher's embedding
of that token alone (``[CLS] t [SEP]``, pooled as the teacher pools), centred (removing the
direction every vector shares) and weighted by SIF with frequencies
estimated from Zipf's law on the vocabulary rank (frequent tokens count less). Written here from
that description; no data set is needed, so it runs anywhere the teacher's files are.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from curate.embedders.models import st_layout

VERSION = "2"  # names the derived folder and so the vector space: bump with any recipe change
SIF_A = 1e-4  # SIF's a; p(token) ~ 1 / rank
_BATCH = 1024

log = logging.getLogger("curate")


def token_vectors(source: Path) -> tuple[np.ndarray, object]:
    """The teacher's pooled output for each vocabulary token on its own; (vocab × dim), tokenizer."""
    import torch
    from transformers import AutoModel

    from curate.embedders.base import load_tokenizer

    pooling, _ = st_layout(source)
    tok = load_tokenizer(source, None)
    net = AutoModel.from_pretrained(str(source)).eval()
    wrap = tok.encode("a", add_special_tokens=True).ids  # [first special..., 'a', ...last special]
    head, tail = wrap[: wrap.index(tok.token_to_id("a"))], wrap[wrap.index(tok.token_to_id("a")) + 1 :]
    n = tok.get_vocab_size()
    out = []
    with torch.inference_mode():
        for start in range(0, n, _BATCH):
            ids = torch.arange(start, min(start + _BATCH, n))
            cols = [torch.full_like(ids, t) for t in head] + [ids] + [torch.full_like(ids, t) for t in tail]
            batch = torch.stack(cols, 1)
            hidden = net(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            out.append((hidden[:, 0] if pooling == "cls" else hidden.mean(1)).float().numpy())
    return np.concatenate(out), tok


def post_process(vectors: np.ndarray) -> np.ndarray:
    """Centre, then weight each row by SIF(Zipf rank). model2vec also rotates onto principal axes
    (PCA); cosines do not change under a rotation, and without one the vectors stay in the teacher's
    basis, where curate.embedders.fit can regress them onto the teacher's outputs."""
    centred = vectors - vectors.mean(0, keepdims=True)
    p = 1.0 / np.arange(1, len(vectors) + 1)
    p /= p.sum()
    return (centred * (SIF_A / (SIF_A + p))[:, None]).astype(np.float32)


def distill(source: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    log.info("distilling a static model from %s (once per model; cached)", source)
    vectors, tok = token_vectors(source)
    _, max_len = st_layout(source)
    save_file({"embeddings": post_process(vectors)}, str(out / "model.safetensors"))
    tok.save(str(out / "tokenizer.json"))  # without the teacher file's fixed padding and truncation
    config = {
        "model_type": "model2vec",
        "hidden_dim": int(vectors.shape[1]),
        "normalize": True,
        "distilled_by": f"curate static v{VERSION}",
        "max_tokens": max_len - 2 if max_len else None,  # the teacher's window, less [CLS] and [SEP]
        "unk_token": "[UNK]" if tok.token_to_id("[UNK]") is not None else None,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
