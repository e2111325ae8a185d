"""Repetition (Gopher, Rae et al. 2021, table A1): duplicate lines and paragraphs, the most frequent
2–4-gram, and the characters covered by repeated 5–10-grams.

Thresholds are the paper's (also datatrove's ``GopherRepetitionFilter`` defaults). Two readings
where the paper is terse, both as in datatrove: a line or paragraph counts as a duplicate from its
second occurrence on, and so does an n-gram occurrence for the 5–10-gram rule (its characters are
counted once even where repeated n-grams overlap). The top-n-gram rule only counts an n-gram that
occurs at least twice, so a short text whose bigrams are all distinct scores 0 instead of the
share of its single longest bigram.

Vectorised over the batch: n-gram hashes are built from word hashes, and an n-gram can only repeat
where the two (n−1)-grams it contains both repeat, so each larger n only looks at the few positions
the previous n left standing.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from curate.filters.base import FilterParams, QualityFilter, Rule, bounds, ratio
from curate.tokens import Segments, TextBytes, combine

_TOP = (2, 3, 4)
_DUP = (5, 6, 7, 8, 9, 10)
_RECORD = np.uint64(0xD6E8FEB86659FD93)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHARS_CAP = (1 << 32) - 1  # an n-gram of a few words is never 4 billion characters long


class RepetitionParams(FilterParams):
    max_dup_line_fraction: float | None = Field(0.3, ge=0, le=1, description="Duplicate lines / lines.")
    max_dup_paragraph_fraction: float | None = Field(0.3, ge=0, le=1, description="Duplicate paragraphs / paragraphs.")
    max_dup_line_char_fraction: float | None = Field(0.2, ge=0, le=1, description="Characters in duplicate lines.")
    max_dup_paragraph_char_fraction: float | None = Field(
        0.2, ge=0, le=1, description="Characters in duplicate paragraphs."
    )
    max_top_2gram: float | None = Field(0.20, ge=0, le=1, description="Characters in the most frequent 2-gram.")
    max_top_3gram: float | None = Field(0.18, ge=0, le=1, description="Characters in the most frequent 3-gram.")
    max_top_4gram: float | None = Field(0.16, ge=0, le=1, description="Characters in the most frequent 4-gram.")
    max_dup_5gram: float | None = Field(0.15, ge=0, le=1, description="Characters in repeated 5-grams.")
    max_dup_6gram: float | None = Field(0.14, ge=0, le=1, description="Characters in repeated 6-grams.")
    max_dup_7gram: float | None = Field(0.13, ge=0, le=1, description="Characters in repeated 7-grams.")
    max_dup_8gram: float | None = Field(0.12, ge=0, le=1, description="Characters in repeated 8-grams.")
    max_dup_9gram: float | None = Field(0.11, ge=0, le=1, description="Characters in repeated 9-grams.")
    max_dup_10gram: float | None = Field(0.10, ge=0, le=1, description="Characters in repeated 10-grams.")


def _keyed(h: np.ndarray, record: np.ndarray) -> pl.Series:
    """Hashes made unique per record, so equal n-grams in different records never match."""
    return pl.Series(combine(h, record.astype(np.uint64) * _RECORD))


def later_occurrences(view: TextBytes, seg: Segments) -> np.ndarray:
    """Per segment: its exact bytes already occurred earlier in the same record."""
    later = np.zeros(len(seg), bool)
    several = np.flatnonzero(np.bincount(seg.record, minlength=seg.n_records)[seg.record] > 1)
    if len(several):  # a record with one line (most of them) repeats none: hash only the others
        part = Segments(seg.start[several], seg.end[several], seg.record[several], seg.n_records)
        later[several] = ~_keyed(view.hashes(part), part.record).is_first_distinct().to_numpy()
    return later


class RepetitionFilter(QualityFilter):
    name = "repetition"
    Params = RepetitionParams
    params: RepetitionParams

    def measure(self, texts: pl.Series, view: TextBytes) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        n_chars = view.n_chars
        for label, seg in (("line", view.lines), ("paragraph", view.paragraphs)):
            later = later_occurrences(view, seg)
            out[f"dup_{label}_fraction"] = ratio(seg.per_record(later.astype(np.float64)), seg.per_record())
            chars = np.where(later, view.char_lengths(seg), 0).astype(np.float64)
            out[f"dup_{label}_char_fraction"] = ratio(seg.per_record(chars), n_chars)
        out.update(self._ngrams(view))
        return out

    @staticmethod
    def _ngrams(view: TextBytes) -> dict[str, np.ndarray]:
        words = view.words
        n_words, rec = len(words), words.record
        wchars = view.char_lengths(words).astype(np.int64, copy=False)
        prefix = np.zeros(n_words + 1, np.int64)
        np.cumsum(wchars, out=prefix[1:])
        total = np.diff(prefix[words.bounds])  # characters in each record's words
        seed = rec.astype(np.uint64)
        seed *= _RECORD
        word_hash = view.hashes(words, seed=seed)  # equal words of two records differ
        # h[p]: hash of the n-gram starting at word p, for the current n. The bigrams are every
        # adjacent pair, built from slices; a pair that straddles two records mixes two records'
        # seeds, so it matches nothing, and it is dropped from what repeats below.
        h = extend(word_hash[:-1], word_hash[1:])
        out = {}
        candidates = None  # n = 2: every position
        for n in range(2, max(_DUP) + 1):
            if candidates is None:
                repeated, count, later = occurrences(h)
                inside = rec[repeated] == rec[repeated + 1]
                repeated, count = repeated[inside], count[inside]
                later = later[rec[later] == rec[later + 1]]
            else:
                h[candidates] = extend(h[candidates], word_hash[candidates + n - 1])
                repeated, count, later = occurrences(h[candidates])
                repeated, later = candidates[repeated], candidates[later]
            if n in _TOP:
                out[f"top_{n}gram"] = ratio(_top_chars(repeated, count, rec, prefix, n, view.n), total)
            if n in _DUP:
                out[f"dup_{n}gram"] = ratio(_covered_chars(np.sort(later), n, rec, wchars, view.n), total)
            # An (n+1)-gram at p repeats only if the n-grams at p and p + 1 both do; both lie inside
            # one record, so the (n+1)-gram does too.
            rep = np.sort(repeated)
            mark = np.zeros(n_words + 1, bool)
            mark[rep] = True
            candidates = rep[mark[rep + 1]]
        return out

    def rules(self) -> list[Rule]:
        names = [
            ("dup_line_fraction", "max_dup_line_fraction"),
            ("dup_paragraph_fraction", "max_dup_paragraph_fraction"),
            ("dup_line_char_fraction", "max_dup_line_char_fraction"),
            ("dup_paragraph_char_fraction", "max_dup_paragraph_char_fraction"),
            *((f"top_{n}gram", f"max_top_{n}gram") for n in _TOP),
            *((f"dup_{n}gram", f"max_dup_{n}gram") for n in _DUP),
        ]
        return bounds(self, [(v, k, False) for v, k in names])


def occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices of the keys that occur more than once, each one's number of occurrences, indices of
    the keys that occurred before).

    One ``np.sort`` of (key's high bits | index) puts equal keys together in index order, so the
    first of a run is the first occurrence; everything after the sort only touches the few runs
    longer than one. Should a run mix two keys that share their high bits (rare), a stable argsort
    of the full keys takes its place."""
    m = len(keys)
    if m == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    low = np.uint64((1 << max(int(m - 1).bit_length(), 1)) - 1)
    packed = keys & ~low
    packed |= np.arange(m, dtype=np.uint64)
    packed.sort()
    pairs = np.flatnonzero((packed[1:] ^ packed[:-1]) <= low)  # sorted i and i + 1: same high bits
    order = (packed[np.concatenate((pairs, pairs + 1))] & low).astype(np.int64)
    if (keys[order[: len(pairs)]] != keys[order[len(pairs) :]]).any():
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        pairs = np.flatnonzero(ordered[1:] == ordered[:-1])
        order = order[np.concatenate((pairs, pairs + 1))]
    later = order[len(pairs) :]
    if len(pairs) == 0:  # every key distinct
        return later, later, later
    head = np.flatnonzero(np.concatenate(([True], pairs[1:] != pairs[:-1] + 1)))  # each run's first pair
    sizes = np.diff(np.concatenate((head, [len(pairs)]))) + 1
    firsts = order[head]  # a run = its first member, then the second members of its pairs
    members = np.empty(len(pairs) + len(head), np.int64)
    at = head + np.arange(len(head))  # where each run starts among the members
    is_first = np.zeros(len(members), bool)
    is_first[at] = True
    members[is_first] = firsts
    members[~is_first] = later
    return members, np.repeat(sizes, sizes), later


def extend(prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Hash of an n-gram from its (n−1)-gram's and its last word's: a polynomial in the (mixed,
    record-seeded) word hashes, so two different n-grams collide with probability ~2⁻⁶⁴."""
    with np.errstate(over="ignore"):
        out = prefix * _GOLDEN
        out += word
        return out


def _top_chars(starts, count, rec, prefix, n, n_records) -> np.ndarray:
    """Per record: occurrences × characters of its most frequent repeated n-gram (ties: the longest).

    (count, characters) packed as count · 2³² + characters, so one ``maximum.at`` per record picks it."""
    out = np.zeros(n_records, np.float64)
    if len(starts) == 0:
        return out
    chars = np.minimum(prefix[starts + n] - prefix[starts], _CHARS_CAP)
    best = np.zeros(n_records, np.int64)
    np.maximum.at(best, rec[starts], (count.astype(np.int64) << 32) | chars)
    found = best > 0
    out[found] = (best[found] >> 32) * (best[found] & _CHARS_CAP)
    return out


def _covered_chars(later_starts, n, rec, wchars, n_records) -> np.ndarray:
    """Per record: characters of words inside any later occurrence of a repeated n-gram (the
    starts are sorted, so the covered words come out sorted and each is counted once)."""
    if len(later_starts) == 0:
        return np.zeros(n_records, np.float64)
    covered = np.unique((later_starts[:, None] + np.arange(n)).ravel())
    return np.bincount(rec[covered], weights=wchars[covered].astype(np.float64), minlength=n_records)
