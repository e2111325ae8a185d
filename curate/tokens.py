"""Byte-level views of a batch of texts: words, lines and their hashes, with no Python loop per record.

The quality filters and MinHash both need, for every record, its words (whitespace-separated) and
stable hashes of words and word n-grams. Going through polars' string lists would materialise one
Python-visible string per word; here everything is numpy over the UTF-8 buffer of the Arrow array:
a 256-entry table classifies bytes, record boundaries come from the Arrow offsets, and a segment's
hash is a polynomial over its bytes read off one prefix sum (``(S[end] − S[start]) · P⁻ˢᵗᵃʳᵗ``,
exact in wrapping uint64 arithmetic because P is odd). Hashes are stable across versions and
machines (no dependence on polars' or Python's hash seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import pyarrow as pa

# Byte classes. Non-ASCII lead bytes count as letters except the Latin-1 symbols (C2 xx), the
# punctuation/symbol blocks U+2000–U+2BFF (E2 80–AF), CJK punctuation (E3 80) and emoji (F0 9F).
SPACE, DIGIT, ALPHA, PUNCT, CONT, LEAD = 1, 2, 4, 8, 16, 32
_CLASS = np.zeros(256, np.uint8)
_CLASS[[9, 10, 11, 12, 13, 32]] = SPACE
_CLASS[ord("0") : ord("9") + 1] = DIGIT
_CLASS[ord("a") : ord("z") + 1] = ALPHA
_CLASS[ord("A") : ord("Z") + 1] = ALPHA
for _c in range(33, 127):
    if _CLASS[_c] == 0:
        _CLASS[_c] = PUNCT
_CLASS[0x80:0xC0] = CONT
_CLASS[0xC0:] = LEAD
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += 32

_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)  # the low k bytes
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


@dataclass
class Segments:
    """Byte spans [start, end) inside a batch, each belonging to record ``record``."""

    start: np.ndarray  # int64
    end: np.ndarray  # int64
    record: np.ndarray  # int64, non-decreasing
    n_records: int

    def __len__(self) -> int:
        return len(self.start)

    def per_record(self, values: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``values`` (or the count) over each record's segments."""
        return np.bincount(self.record, weights=values, minlength=self.n_records)

    @cached_property
    def first(self) -> np.ndarray:
        """Index of each record's first segment (len(self) when it has none)."""
        return np.searchsorted(self.record, np.arange(self.n_records))


class TextBytes:
    """The UTF-8 bytes of a batch of texts (nulls read as empty) with their byte classes.

    Every record is stored followed by ``"\\n\\n"``, so no word, line or paragraph ever spans two
    records and segment boundaries need no special case; ``offsets`` include that terminator.
    """

    TERMINATOR = 2

    def __init__(self, texts: pl.Series) -> None:
        arr = (texts.fill_null("") + "\n\n").to_arrow()
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        arr = arr.cast(pa.large_string())
        self.n = len(arr)
        if self.n == 0:
            self.offsets, self.data = np.zeros(1, np.int64), np.zeros(0, np.uint8)
        else:
            raw = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + self.n + 1]
            self.data = np.frombuffer(arr.buffers()[2], np.uint8)[raw[0] : raw[-1]]
            self.offsets = raw - raw[0]
        self.cls = _CLASS[self.data]
        self.ascii = not (self.data >= 0x80).any()

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per record, the number of bytes where ``mask`` is true."""
        return Sparse(mask).within(self.offsets[:-1], self.offsets[1:])

    @cached_property
    def n_chars(self) -> np.ndarray:
        """Characters of each text (its terminator excluded)."""
        n_bytes = np.diff(self.offsets) - self.TERMINATOR
        return n_bytes if self.ascii else n_bytes - self.count(self.cls == CONT)

    def char_lengths(self, seg: Segments) -> np.ndarray:
        """Characters in each segment."""
        if self.ascii:
            return seg.end - seg.start
        return self._chars.within(seg.start, seg.end)

    @cached_property
    def _chars(self) -> Sparse:
        return Sparse(self.cls != CONT)

    def find(self, seq: bytes) -> np.ndarray:
        """Start positions of every occurrence of ``seq`` (overlapping ones included)."""
        pos = np.flatnonzero(self.data == seq[0])
        for k, byte in enumerate(seq[1:], start=1):
            pos = pos[pos + k < len(self.data)]
            pos = pos[self.data[pos + k] == byte]
        return pos

    def record_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.offsets, positions, side="right") - 1

    def segments(self, separator: np.ndarray) -> Segments:
        """Maximal runs of bytes where ``separator`` (true at every terminator) is false."""
        edges = np.diff((~separator).view(np.int8), prepend=np.int8(0), append=np.int8(0))
        at = np.flatnonzero(edges)
        start, end = at[edges[at] > 0], at[edges[at] < 0]
        return Segments(start, end, self.record_of(start), self.n)

    def between(self, cuts: np.ndarray, width: np.ndarray | int = 1) -> Segments:
        """The non-empty spans between sorted separator positions ``cuts`` (each ``width`` bytes
        long), for separators that are rare (newlines): no pass over every byte."""
        starts = np.concatenate(([0], cuts + width))
        ends = np.concatenate((cuts, [len(self.data)]))
        keep = ends > starts
        start, end = starts[keep], ends[keep]
        return Segments(start, end, self.record_of(start), self.n)

    @cached_property
    def newlines(self) -> np.ndarray:
        """Positions of every newline byte (each record's terminator included)."""
        return np.flatnonzero(self.data == ord("\n"))

    @cached_property
    def lines(self) -> Segments:
        """Text between newlines (runs of newlines are one separator, as ``re.split(r"\\n+")``)."""
        return self.between(self.newlines)

    @cached_property
    def paragraphs(self) -> Segments:
        """Text between runs of two or more newlines."""
        nl = self.newlines
        double = np.zeros(len(nl), bool)
        pair = nl[1:] == nl[:-1] + 1
        double[1:] |= pair
        double[:-1] |= pair
        runs = nl[double]  # newline bytes that belong to a run of ≥ 2: each one a one-byte separator
        return self.between(runs)

    @cached_property
    def is_space(self) -> np.ndarray:
        return (self.cls & SPACE) != 0

    @cached_property
    def words(self) -> Segments:
        """Whitespace-separated words (Gopher's and datatrove's unit)."""
        return self.segments(self.is_space)

    def hashes(self, seg: Segments, data: np.ndarray | None = None) -> np.ndarray:
        """A stable 64-bit hash of each segment's bytes (of ``data`` when given, e.g. lowercased).

        Eight bytes at a time: one gather of the first block of every segment, then further blocks
        only for the segments longer than that, so the cost is per segment, not per byte.
        """
        if len(seg) == 0:
            return np.zeros(0, np.uint64)
        windows = self._windows if data is None else _windows(data)
        length = seg.end - seg.start
        with np.errstate(over="ignore"):
            block = windows[seg.start].view("<u8").ravel() & _MASKS[np.minimum(length, 8)]
            h = mix64(length.astype(np.uint64) * _GOLDEN ^ block)
            todo, done = np.flatnonzero(length > 8), 8
            while len(todo):
                block = windows[seg.start[todo] + done].view("<u8").ravel()
                block &= _MASKS[np.minimum(length[todo] - done, 8)]
                h[todo] = mix64(h[todo] ^ block)
                done += 8
                todo = todo[length[todo] > done]
            return h

    @cached_property
    def _windows(self) -> np.ndarray:
        return _windows(self.data)

    def lowercased(self) -> np.ndarray:
        """ASCII-lowercased bytes (pair with ``polars.str.to_lowercase`` for the rest of Unicode)."""
        return _LOWER[self.data]


def _windows(data: np.ndarray) -> np.ndarray:
    """Row i = the 8 bytes from position i (zero past the end), gathered per segment start."""
    padded = np.zeros(len(data) + 8, np.uint8)
    padded[: len(data)] = data
    return np.lib.stride_tricks.sliding_window_view(padded, 8)


class Sparse:
    """A boolean mask over the bytes, kept as the positions of its rarer value, so counts over many
    spans are two binary searches each instead of a prefix sum over every byte (measured 5-10× faster)."""

    def __init__(self, mask: np.ndarray) -> None:
        self.dense = bool(mask.sum() * 2 > len(mask))
        self.positions = np.flatnonzero(~mask if self.dense else mask)

    def within(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Number of true values in each span [start, end)."""
        inside = np.searchsorted(self.positions, end) - np.searchsorted(self.positions, start)
        return (end - start) - inside if self.dense else inside


def combine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Order-sensitive combination of two hash arrays (n-gram from its prefix and next word)."""
    with np.errstate(over="ignore"):
        return mix64(left * _GOLDEN + right)


def ngram_hashes(word_hashes: np.ndarray, record: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, start word) of every n-gram of consecutive words inside one record."""
    h = word_hashes
    for j in range(1, n):
        h = combine(h[:-1], word_hashes[j:])
    starts = np.arange(len(h), dtype=np.int64)
    valid = record[: len(h)] == record[n - 1 :] if n > 1 else np.ones(len(h), bool)
    return h[valid], starts[valid]
