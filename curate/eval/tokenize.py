"""Texts → token ids with the packaged MiniLM WordPiece tokenizer (the proxy's vocabulary).

The same tokenizer for every proxy and every subset, so perplexities are comparable across
selections, budgets and proxies. Ids come back in CSR layout (flat ids + per-text offsets).
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

BOS, EOS = "[CLS]", "[SEP]"


@lru_cache(maxsize=4)
def _tokenizer(max_tokens: int):
    from curate.embedders.base import load_tokenizer
    from curate.embedders.models import DEFAULT_MODEL, resolve_model

    return load_tokenizer(resolve_model(DEFAULT_MODEL), max_tokens)


class Vocab:
    """Size and the boundary tokens the proxies put around each text."""

    def __init__(self, max_tokens: int) -> None:
        tok = _tokenizer(max_tokens)
        self.size = int(tok.get_vocab_size())
        self.bos, self.eos = int(tok.token_to_id(BOS)), int(tok.token_to_id(EOS))
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        from curate.embedders.base import token_ids

        if not texts:
            return np.zeros(0, np.int64), np.zeros(1, np.int64)
        return token_ids(_tokenizer(self.max_tokens), texts, special=False)

    def compact(self, *arrays: np.ndarray) -> tuple[Vocab, list[np.ndarray]]:
        """A vocabulary of just the tokens in ``arrays`` (plus BOS/EOS) and the arrays in its ids."""
        used, inverse = np.unique(np.concatenate([*arrays, [self.bos, self.eos]]), return_inverse=True)
        small = copy.copy(self)
        small.size = len(used)
        small.bos, small.eos = int(inverse[-2]), int(inverse[-1])
        bounds = np.cumsum([0, *(len(a) for a in arrays)])
        return small, [inverse[bounds[i] : bounds[i + 1]] for i in range(len(arrays))]


def take(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR sub-batch of texts ``rows`` (in that order), without a Python loop per text."""
    rows = np.asarray(rows, np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    out_off = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=out_off[1:])
    shift = np.repeat(offsets[rows] - out_off[:-1], lengths)
    return ids[np.arange(out_off[-1]) + shift], out_off


def framed(ids: np.ndarray, offsets: np.ndarray, pad: int, bos: int, eos: int):
    """Each text as ``[BOS]*pad + tokens + [EOS]``, flat; returns (tokens, predicted positions, text of each
    position). Every token and the EOS is predicted, from a context that never reaches the previous text."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    new_off = np.zeros(n + 1, np.int64)
    np.cumsum(lengths + pad + 1, out=new_off[1:])
    out = np.full(int(new_off[-1]), bos, np.int64)
    text_of = np.repeat(np.arange(n), lengths)
    within = np.arange(len(ids)) - offsets[:-1][text_of]
    out[new_off[:-1][text_of] + pad + within] = ids
    out[new_off[1:] - 1] = eos
    predicted = lengths + 1
    pos_text = np.repeat(np.arange(n), predicted)
    start = np.repeat(new_off[:-1] + pad - np.concatenate([[0], np.cumsum(predicted)[:-1]]), predicted)
    positions = np.arange(int(predicted.sum())) + start
    return out, positions, pos_text
