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

from dataclasses import dataclass, field
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
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_INT32_MAX = 2**31 - 1
_NARROW_FROM = 1 << 18  # below, the haystack is in cache and the int32 copy costs more than it saves


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit (in place after one copy)."""
    return mix64_into(h.copy(), np.empty_like(h))


def mix64_into(h: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``mix64`` overwriting ``h``, with ``scratch`` (same shape) as its only temporary: on arrays of
    a few MB each pass is memory-bound, so five fresh temporaries cost more than the arithmetic."""
    with np.errstate(over="ignore"):
        for shift, factor in ((_S30, _M1), (_S27, _M2)):
            np.right_shift(h, shift, out=scratch)
            h ^= scratch
            h *= factor
        np.right_shift(h, _S31, out=scratch)
        h ^= scratch
    return h


def locate(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """``np.searchsorted`` of sorted non-negative positions, on int32 copies when they fit and there
    are enough needles to pay for the copy: a binary search over a few MB misses the cache at every
    level, and halving the width measured 2-3x faster (20k needles in 760k; slower in 155k)."""
    narrow = len(haystack) > _NARROW_FROM and len(needles) * 32 >= len(haystack) and haystack.dtype == np.int64
    if narrow and max(haystack[-1], needles[-1]) <= _INT32_MAX and min(haystack[0], needles[0]) >= 0:
        return np.searchsorted(haystack.astype(np.int32), needles.astype(np.int32), side=side)
    return np.searchsorted(haystack, needles, side=side)


@dataclass
class Segments:
    """Byte spans [start, end) inside a batch, each belonging to record ``record``."""

    start: np.ndarray  # int64
    end: np.ndarray  # int64
    record: np.ndarray  # int64, non-decreasing
    n_records: int
    known_bounds: np.ndarray | None = field(default=None, repr=False)  # ``bounds``, when the builder has them

    def __len__(self) -> int:
        return len(self.start)

    def per_record(self, values: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``values`` (or the count) over each record's segments."""
        if values is None:
            return np.diff(self.bounds)
        return np.bincount(self.record, weights=values, minlength=self.n_records)

    @property
    def bounds(self) -> np.ndarray:
        """Record r's segments are [bounds[r], bounds[r + 1]) (``n_records + 1`` entries)."""
        if self.known_bounds is None:
            self.known_bounds = locate(self.record, np.arange(self.n_records + 1))
        return self.known_bounds

    @cached_property
    def first(self) -> np.ndarray:
        """Index of each record's first segment (len(self) when it has none)."""
        return self.bounds[:-1]

    def of(self, positions: np.ndarray) -> np.ndarray:
        """Index of the last segment starting at or before each byte position (−1 before the first)."""
        return np.searchsorted(self.start, positions, side="right") - 1


class TextBytes:
    """The UTF-8 bytes of a batch of texts (nulls read as empty) with their byte classes.

    Every record is stored followed by ``"\\n\\n"``, so no word, line or paragraph ever spans two
    records and segment boundaries need no special case; ``offsets`` include that terminator.
    Per-byte masks are built from comparisons (a 256-entry table lookup is 5-10× slower per byte), and
    what only non-ASCII bytes change is corrected from their positions, which real text has few of.
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
        self.ascii = not (self.data >= 0x80).any()

    @cached_property
    def cls(self) -> np.ndarray:
        """Per byte, its class (SPACE, DIGIT, ALPHA, PUNCT, CONT or LEAD; 0 for control bytes)."""
        return _CLASS[self.data]

    @cached_property
    def high(self) -> np.ndarray:
        """Positions of the non-ASCII bytes (lead and continuation bytes)."""
        return np.zeros(0, np.int64) if self.ascii else np.flatnonzero(self.data >= 0x80)

    @cached_property
    def continuations(self) -> np.ndarray:
        """Positions of UTF-8 continuation bytes: every other byte starts a character."""
        h = self.high
        return h[self.data[h] < 0xC0]

    @cached_property
    def leads(self) -> np.ndarray:
        """Positions of UTF-8 lead bytes (the first byte of each non-ASCII character)."""
        h = self.high
        return h[self.data[h] >= 0xC0]

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per record, the number of bytes where ``mask`` is true."""
        return Sparse(mask).within(self.offsets[:-1], self.offsets[1:])

    def count_at(self, positions: np.ndarray) -> np.ndarray:
        """Per record, how many of the (sorted) byte ``positions`` fall in it."""
        return np.diff(locate(positions, self.offsets))

    @cached_property
    def n_chars(self) -> np.ndarray:
        """Characters of each text (its terminator excluded)."""
        n_bytes = np.diff(self.offsets) - self.TERMINATOR
        return n_bytes if self.ascii else n_bytes - self.count_at(self.continuations)

    def char_lengths(self, seg: Segments) -> np.ndarray:
        """Characters in each segment (segments sorted and disjoint, as all of them are)."""
        n_bytes = seg.end - seg.start
        if self.ascii:
            return n_bytes
        cont = self.continuations  # few: find each one's segment, not each segment's count
        at = seg.of(cont)
        inside = at >= 0
        inside[inside] = cont[inside] < seg.end[at[inside]]
        return n_bytes - np.bincount(at[inside], minlength=len(seg))

    def find(self, seq: bytes) -> np.ndarray:
        """Start positions of every occurrence of ``seq`` (overlapping ones included)."""
        pos = np.flatnonzero(self.data == seq[0])
        for k, byte in enumerate(seq[1:], start=1):
            pos = pos[pos + k < len(self.data)]
            pos = pos[self.data[pos + k] == byte]
        return pos

    def peek(self, positions: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` ≤ 8 bytes from each position as a little-endian uint64 (zero past the end;
        a negative position reads as zero)."""
        inside = np.clip(positions, 0, len(self.data))
        return np.where(positions >= 0, self._words64[inside] & _MASKS[k], np.uint64(0))

    def record_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.offsets, positions, side="right") - 1

    def segments(self, separator: np.ndarray) -> Segments:
        """Maximal runs of bytes where ``separator`` (true at every terminator) is false."""
        if len(separator) == 0:
            return Segments(*(np.zeros(0, np.int64),) * 3, self.n)
        at = np.flatnonzero(separator[1:] != separator[:-1])  # every run's edges (less one), alternating
        at += 1
        if not separator[0]:
            at = np.concatenate(([0], at))
        edges = at.reshape(-1, 2)  # the last byte is a separator: every run ends
        start, end = edges[:, 0].copy(), edges[:, 1].copy()  # contiguous: both are read many times
        bounds = locate(start, self.offsets)
        record = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(bounds))
        return Segments(start, end, record, self.n, bounds)

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
        """ASCII whitespace (tab, newline, vertical tab, form feed, carriage return, space)."""
        space = self.data <= 32
        low = np.flatnonzero(self.data < 32)  # control bytes are rare: fix those that are not whitespace
        space[low] = (self.data[low] >= 9) & (self.data[low] <= 13)
        return space

    @cached_property
    def words(self) -> Segments:
        """Whitespace-separated words (Gopher's and datatrove's unit)."""
        return self.segments(self.is_space)

    def hashes(self, seg: Segments, data: np.ndarray | None = None, seed: np.ndarray | None = None) -> np.ndarray:
        """A stable 64-bit hash of each segment's bytes (of ``data`` when given, e.g. lowercased),
        with a per-segment ``seed`` mixed in when given (e.g. its record, so equal words of different
        records differ).

        Eight bytes at a time: one gather of the first block of every segment, then further blocks
        only for the segments longer than that, so the cost is per segment, not per byte.
        """
        if len(seg) == 0:
            return np.zeros(0, np.uint64)
        words = self._words64 if data is None else _words64(data)
        length = seg.end - seg.start
        with np.errstate(over="ignore"):
            h = words[seg.start]
            h &= _MASKS[np.minimum(length, 8)]
            scratch = length.astype(np.uint64)
            scratch *= _GOLDEN
            h ^= scratch
            if seed is not None:
                h ^= seed
            mix64_into(h, scratch)
            todo, done = np.flatnonzero(length > 8), 8
            while len(todo):
                block = words[seg.start[todo] + done]
                block &= _MASKS[np.minimum(length[todo] - done, 8)]
                block ^= h[todo]
                h[todo] = mix64_into(block, np.empty_like(block))
                done += 8
                todo = todo[length[todo] > done]
            return h

    @cached_property
    def _words64(self) -> np.ndarray:
        return _words64(self.data)

    def lowercased(self) -> np.ndarray:
        """ASCII-lowercased bytes (pair with ``polars.str.to_lowercase`` for the rest of Unicode)."""
        return _LOWER[self.data]


def _words64(data: np.ndarray) -> np.ndarray:
    """Element i = the little-endian uint64 of the 8 bytes from position i (zero past the end): an
    unaligned view with a one-byte stride, so a gather reads a segment's first block in one load."""
    padded = np.zeros(len(data) + 8, np.uint8)
    padded[: len(data)] = data
    return np.ndarray((len(data) + 1,), "<u8", buffer=padded, strides=(1,))


class Sparse:
    """A boolean mask over the bytes, kept as the positions of its rarer value, so counts over many
    spans are two binary searches each instead of a prefix sum over every byte (measured 5-10× faster)."""

    def __init__(self, mask: np.ndarray) -> None:
        self.dense = bool(mask.sum() * 2 > len(mask))
        self.positions = np.flatnonzero(~mask if self.dense else mask)

    def within(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Number of true values in each span [start, end)."""
        inside = locate(self.positions, end) - locate(self.positions, start)
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
