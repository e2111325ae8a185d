"""An interpolated Witten-Bell n-gram LM over token ids, trained on weighted records, fully vectorised.

    P_k(w | h) = (c(h, w) + T(h) · P_{k-1}(w | h')) / (c(h) + T(h))     (h' = h without its oldest token)

with c the (weighted) n-gram counts, T(h) the number of distinct tokens seen after h, and P_0 uniform
over the vocabulary, so every token of any text has a finite loss. Witten-Bell is chosen over
Kneser-Ney because it needs no discount and is defined for the fractional counts a weighted manifest
gives (a record of weight 2.5 counts 2.5 times), and over add-k because it has no constant to tune.

Weights re-weight the training *distribution*, they do not add data: each distinct continuation
counts in T(h) with the mean weight of its occurrences, so scaling every weight under a history
changes nothing there, and only the mix between records of different weight moves. (Counting types
unweighted makes an up-weighted history look better attested than it is: less back-off, and a
higher held-out loss, exactly what repeating data does to this estimator.)
An n-gram of order k is one integer key (Σ_j token[p-j] · V^j); with V ≈ 30k, orders ≤ 4 fit in int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.eval.tokenize import Vocab, framed


@dataclass
class _Order:
    keys: np.ndarray  # sorted n-gram keys
    counts: np.ndarray  # weighted count of each key
    hist: np.ndarray  # sorted history keys (key // V)
    hist_count: np.ndarray  # c(h)
    hist_types: np.ndarray  # T(h)


def _keys(tokens: np.ndarray, positions: np.ndarray, k: int, v: int) -> np.ndarray:
    key = np.zeros(len(positions), np.int64)
    for j in range(k - 1, -1, -1):  # Horner: token[p-k+1]·V^{k-1} + … + token[p]
        key = key * v + tokens[positions - j] if j < k - 1 else tokens[positions - j].astype(np.int64)
    return key


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[i] where sorted_keys[i] == query, else 0."""
    if len(sorted_keys) == 0:
        return np.zeros(len(query), values.dtype)
    idx = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
    return np.where(sorted_keys[idx] == query, values[idx], 0)


class NgramLM:
    """``fit`` on CSR token batches with per-text weights; ``score`` gives per-text summed NLL (nats)."""

    name = "ngram"

    def __init__(self, vocab: Vocab, order: int = 3) -> None:
        if not 1 <= order <= 4:
            raise ValueError("order must be 1..4 (keys are int64)")
        self.vocab, self.order = vocab, order
        self.tables: list[_Order] = []
        self.trained_tokens = 0.0

    def fit(self, ids: np.ndarray, offsets: np.ndarray, weights: np.ndarray | None = None) -> NgramLM:
        v = self.vocab.size
        tokens, positions, text = framed(ids, offsets, self.order - 1, self.vocab.bos, self.vocab.eos)
        w = np.ones(len(positions)) if weights is None else np.asarray(weights, np.float64)[text]
        keep = w > 0
        positions, w = positions[keep], w[keep]
        self.trained_tokens = float(w.sum())
        self.tables = []
        for k in range(1, self.order + 1):
            keys, inverse = np.unique(_keys(tokens, positions, k, v), return_inverse=True)
            counts = np.bincount(inverse, weights=w, minlength=len(keys))
            type_weight = counts / np.bincount(inverse, minlength=len(keys))  # mean weight of its occurrences
            hist, first = np.unique(keys // v, return_index=True)
            hist_count = np.add.reduceat(counts, first) if len(first) else np.zeros(0)
            hist_types = np.add.reduceat(type_weight, first) if len(first) else np.zeros(0)
            self.tables.append(_Order(keys, counts, hist, hist_count, hist_types))
        return self

    def score(self, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(summed NLL, predicted tokens) per text: every token plus the end of text."""
        v = self.vocab.size
        tokens, positions, text = framed(ids, offsets, self.order - 1, self.vocab.bos, self.vocab.eos)
        prob = np.full(len(positions), 1.0 / v)
        for k, table in enumerate(self.tables, start=1):
            key = _keys(tokens, positions, k, v)
            c_hw = _lookup(table.keys, table.counts, key)
            hist = key // v
            c_h = _lookup(table.hist, table.hist_count, hist)
            t_h = _lookup(table.hist, table.hist_types, hist)
            seen = c_h > 0
            prob = np.where(seen, (c_hw + t_h * prob) / np.where(seen, c_h + t_h, 1.0), prob)
        n = len(offsets) - 1
        nll = np.bincount(text, weights=-np.log(prob), minlength=n)
        return nll, np.bincount(text, minlength=n).astype(np.float64)
