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
        n_words = len(words)
        wchars = view.char_lengths(words).astype(np.int64)
        total = words.per_record(wchars.astype(np.float64))
        prefix = np.concatenate(([0], np.cumsum(wchars)))
        word_hash = view.hashes(words)
        h = word_hash.copy()  # h[p]: hash of the n-gram starting at word p, for the current n
        rec = words.record
        out = {}
        candidates = np.arange(max(n_words - 1, 0), dtype=np.int64)  # bigram starts
        for n in range(2, max(_DUP) + 1):
            candidates = candidates[candidates + n - 1 < n_words]
            candidates = candidates[rec[candidates] == rec[candidates + n - 1]]
            h[candidates] = combine(h[candidates], word_hash[candidates + n - 1])
            keys = _keyed(h[candidates], rec[candidates])
            repeated = keys.is_duplicated().to_numpy()
            if n in _TOP:
                out[f"top_{n}gram"] = ratio(_top_chars(keys, candidates, repeated, rec, prefix, n, view.n), total)
            if n in _DUP:
                later = ~keys.is_first_distinct().to_numpy()
                out[f"dup_{n}gram"] = ratio(_covered_chars(candidates[later], n, n_words, rec, wchars, view.n), total)
            rep = candidates[repeated]  # an (n+1)-gram at p repeats only if the n-grams at p and p+1 do
            nxt = np.minimum(np.searchsorted(rep, rep + 1), max(len(rep) - 1, 0))  # rep is sorted
            candidates = rep[rep[nxt] == rep + 1] if len(rep) else rep
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


def _top_chars(keys, starts, repeated, rec, prefix, n, n_records) -> np.ndarray:
    """Per record: occurrences × characters of its most frequent repeated n-gram (ties: the longest)."""
    out = np.zeros(n_records, np.float64)
    if not repeated.any():
        return out
    k = keys.to_numpy()[repeated]
    s = starts[repeated]
    _, inverse, counts = np.unique(k, return_inverse=True, return_counts=True)
    count = counts[inverse].astype(np.float64)
    chars = (prefix[s + n] - prefix[s]).astype(np.float64)
    r = rec[s]
    order = np.lexsort((chars, count, r))  # last of each record = highest count, then longest
    last = np.concatenate((r[order][1:] != r[order][:-1], [True]))
    best = order[last]
    out[r[best]] = count[best] * chars[best]
    return out


def _covered_chars(later_starts, n, n_words, rec, wchars, n_records) -> np.ndarray:
    """Per record: characters of words inside any later occurrence of a repeated n-gram."""
    if len(later_starts) == 0:
        return np.zeros(n_records, np.float64)
    delta = np.bincount(later_starts, minlength=n_words + 1) - np.bincount(later_starts + n, minlength=n_words + 1)
    covered = np.flatnonzero(np.cumsum(delta[:n_words]) > 0)
    return np.bincount(rec[covered], weights=wchars[covered].astype(np.float64), minlength=n_records)
