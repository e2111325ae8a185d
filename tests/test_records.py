"""Identity and duplicate bookkeeping used by ingest."""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.records import (
    Fingerprint,
    SeenSet,
    binary16_to_numpy,
    numpy_to_binary16,
    occurrence_in_chunk,
    text_hashes,
)


def test_fingerprint_depends_on_order_and_boundaries() -> None:
    def fp(ids, texts):
        f = Fingerprint()
        f.update(pl.DataFrame({"id": ids, "text": texts}))
        return f.hexdigest()

    base = fp(["1", "2"], ["ab", "c"])
    assert base == fp(["1", "2"], ["ab", "c"])
    assert base != fp(["2", "1"], ["c", "ab"])
    assert base != fp(["1", "2"], ["a", "bc"])  # length prefixes make boundaries matter
    split = Fingerprint()
    split.update(pl.DataFrame({"id": ["1"], "text": ["ab"]}))
    split.update(pl.DataFrame({"id": ["2"], "text": ["c"]}))
    assert split.hexdigest() == base  # chunking does not matter


def test_binary_roundtrip_and_text_hash_is_blake2b() -> None:
    import hashlib

    hashes = text_hashes(pl.Series(["a", "b", "ümlaut"]))
    matrix = binary16_to_numpy(hashes)
    assert matrix.shape == (3, 16)
    assert bytes(matrix[2]) == hashlib.blake2b("ümlaut".encode(), digest_size=16).digest()
    assert numpy_to_binary16(matrix).to_list() == hashes.to_list()


def test_occurrence_in_chunk() -> None:
    keys = np.array([5, 3, 5, 5, 3, 9], np.uint64)
    assert occurrence_in_chunk(keys).tolist() == [0, 0, 1, 2, 1, 0]


def test_seen_set_tracks_first_line_and_counts() -> None:
    seen = SeenSet()
    seen.add(np.array([7, 3], np.uint64), np.array([1, 2]))
    seen.add(np.array([7, 11], np.uint64), np.array([5, 6]))
    found, first, prior = seen.lookup(np.array([3, 7, 11, 12], np.uint64))
    assert found.tolist() == [True, True, True, False]
    assert first.tolist() == [2, 1, 6, -1]
    assert prior.tolist() == [1, 2, 1, 0]
