"""Hashed n-grams: the reference's buckets in sha256 mode, and invariants of the fast mode."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from curate.stages.ngrams import NgramParams, featurize, tokenize

SHA = NgramParams(hash="sha256")


def _buckets(text: str, params: NgramParams) -> dict[int, int]:
    counts, _ = featurize(pl.Series([text]), params)
    row = counts.getrow(0)
    return dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))


def test_reference_golden_buckets() -> None:
    # ALGORITHMS.md §1.10: values asserted by the data-selection package's own tests.
    assert _buckets("alice", SHA) == {6720: 1}
    assert _buckets("Alice went", SHA) == {6720: 1, 114: 1, _sha("went"): 1}
    counts, n_tokens = featurize(pl.Series(["Alice went to the store"]), SHA)
    assert counts.sum() == 9 and n_tokens.tolist() == [5]


def _sha(gram: str, m: int = 10_000) -> int:
    return int(hashlib.sha256(gram.encode()).hexdigest(), 16) % m


def test_wordpunct_tokenisation_matches_reference() -> None:
    assert tokenize(pl.Series(["The cat sat."]), SHA).to_list() == [["the", "cat", "sat", "."]]
    assert tokenize(pl.Series(["Wait!! x-y"]), SHA).to_list() == [["wait", "!!", "x", "-", "y"]]


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("mode", ["fast", "sha256"])
def test_counts_per_document_are_exact(order: int, mode: str) -> None:
    texts = ["one", "one two", "a b c d e f", "", "x, y; z."]
    counts, n_tokens = featurize(pl.Series(texts), NgramParams(ngram_order=order, hash=mode))
    expected = [sum(max(n - j + 1, 0) for j in range(1, order + 1)) for n in n_tokens]
    assert np.asarray(counts.sum(axis=1)).ravel().tolist() == expected
    assert n_tokens.tolist() == [1, 2, 6, 0, 6]


def test_sha256_mode_equals_python_reference_on_real_text() -> None:
    text = "Federated learning trains models on data that never leaves the devices, at scale."
    tokens = tokenize(pl.Series([text]), SHA).to_list()[0]
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
    expected: dict[int, int] = {}
    for g in grams:
        expected[_sha(g)] = expected.get(_sha(g), 0) + 1
    assert _buckets(text, SHA) == expected


def test_bigrams_do_not_cross_documents_and_order_matters() -> None:
    counts, _ = featurize(pl.Series(["red apple", "apple red"]), NgramParams())
    a, b = counts.getrow(0), counts.getrow(1)
    assert set(a.indices) != set(b.indices)  # "red apple" and "apple red" hash differently
    assert len(set(a.indices) & set(b.indices)) == 2  # but share both unigrams
    together, _ = featurize(pl.Series(["red apple apple red"]), NgramParams())
    assert together.sum() == 4 + 3


def test_fast_mode_is_stable_and_batch_independent() -> None:
    texts = pl.Series([f"document {i} about topic {i % 7}" for i in range(50)])
    whole, _ = featurize(texts, NgramParams())
    parts = [featurize(texts.slice(i, 10), NgramParams())[0] for i in range(0, 50, 10)]
    import scipy.sparse as sp

    assert (whole != sp.vstack(parts)).nnz == 0
    # a fixed bucket for a fixed token: persisted features stay valid across processes
    assert _buckets("curate", NgramParams()) == _buckets("curate", NgramParams())
