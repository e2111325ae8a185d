"""Character composition: symbols, digits, letters, bullets and ellipses (Gopher's quality rules plus
the digit and non-alphabetic ratios most heuristic pipelines add).

Counted on bytes (see ``curate.tokens``): ASCII is classified exactly; a non-ASCII character counts as
a letter unless it is a Latin-1 symbol, general punctuation or a symbol block (U+2000–U+2BFF), CJK
punctuation or an emoji.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from curate.filters.base import FilterParams, QualityFilter, Rule, bounds, ratio
from curate.filters.length import non_space_chars
from curate.tokens import Segments, TextBytes, locate


def _code(seq: bytes) -> int:
    """The bytes as ``TextBytes.peek`` reads them (little-endian)."""
    return int.from_bytes(seq, "little")


_BULLETS_ASCII = np.array([ord("-"), ord("*")], np.uint64)
_BULLETS_UTF8 = np.array([_code(c.encode()) for c in "•‣●◦▪"], np.uint64)
_ELLIPSIS = "…".encode()
_ELLIPSES = np.array([_code(b"..."), _code(_ELLIPSIS)], np.uint64)


class CharacterParams(FilterParams):
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="Gopher: ('#' + '...' + '…') per word ≤ 0.1.")
    min_alpha_word_fraction: float | None = Field(
        0.8, ge=0, le=1, description="Gopher: ≥ 80 % of words contain a letter."
    )
    max_digit_ratio: float | None = Field(None, ge=0, le=1, description="Digits per non-space character (off).")
    max_non_alpha_ratio: float | None = Field(
        None, ge=0, le=1, description="Non-letters per non-space character (off)."
    )
    max_bullet_line_fraction: float | None = Field(
        0.9, ge=0, le=1, description="Gopher: ≤ 90 % of lines start with a bullet."
    )
    max_ellipsis_line_fraction: float | None = Field(
        0.3, ge=0, le=1, description="Gopher: ≤ 30 % of lines end with an ellipsis."
    )


def _ellipses(view: TextBytes, dots: np.ndarray) -> np.ndarray:
    """Per record, non-overlapping '...' (as ``str.count``) from the sorted dot positions: a run of
    k dots holds k // 3."""
    if len(dots) == 0:
        return np.zeros(view.n, np.int64)
    head = np.concatenate(([True], dots[1:] != dots[:-1] + 1))
    starts = np.flatnonzero(head)
    runs = np.diff(np.concatenate((starts, [len(dots)])))
    return np.bincount(view.record_of(dots[starts]), weights=runs // 3, minlength=view.n).astype(np.int64)


def _letterless_words(view: TextBytes, other: np.ndarray) -> np.ndarray:
    """Per record, words without a letter: such a word is a run of consecutive positions in
    ``other`` (the sorted non-letter, non-space bytes) with whitespace on both sides."""
    if len(other) == 0:
        return np.zeros(view.n, np.int64)
    head = np.flatnonzero(np.concatenate(([True], other[1:] != other[:-1] + 1)))
    start, end = other[head], other[np.concatenate((head[1:], [len(other)])) - 1] + 1
    space = view.is_space
    alone = (start == 0) | space[np.maximum(start - 1, 0)]
    alone &= space[np.minimum(end, len(space) - 1)]  # the terminator follows the last word
    return view.count_at(start[alone])


_SCAN = 8  # bytes of leading (trailing) whitespace stepped over per line before the words are asked


def _skip_spaces(space: np.ndarray, pos: np.ndarray, limit: np.ndarray, step: int) -> np.ndarray:
    """Per span, the first position from ``pos`` (stepping by ``step`` towards ``limit``) that is not
    whitespace, else ``limit``; after ``_SCAN`` steps a position is left where it got to (it then
    lies more than ``_SCAN`` from ``pos``, which the caller checks). Lines rarely start with spaces,
    so each step looks at fewer lines."""
    pos = pos.copy()
    todo = np.arange(len(pos))
    for _ in range(_SCAN + 1):
        at = pos[todo]
        go = at != limit[todo]
        go &= space[at]
        todo = todo[go]
        if len(todo) == 0:
            break
        pos[todo] += step
    return pos


def letters(view: TextBytes) -> np.ndarray:
    """Per byte: does a letter start here (an ASCII letter, or a non-symbolic lead byte)."""
    data = view.data
    is_letter = (data | np.uint8(0x20)) - np.uint8(ord("a")) < 26  # A-Z and a-z; bytes ≥ 0x80 wrap above
    if view.ascii:
        return is_letter
    lead = view.leads
    nxt = data[np.minimum(lead + 1, len(data) - 1)]
    b = data[lead]
    symbolic = (
        (b == 0xC2) | ((b == 0xE2) & (nxt < 0xB0)) | ((b == 0xE3) & (nxt == 0x80)) | ((b == 0xF0) & (nxt == 0x9F))
    )
    is_letter[lead[~symbolic]] = True
    return is_letter


class CharacterFilter(QualityFilter):
    name = "characters"
    Params = CharacterParams
    params: CharacterParams

    def measure(self, texts: pl.Series, view: TextBytes) -> dict[str, np.ndarray]:
        data, words = view.data, view.words
        n_words = words.per_record()
        non_space = non_space_chars(view)
        is_letter = letters(view)
        # Bytes that are neither letters nor whitespace are few (punctuation, digits, UTF-8 tails):
        # everything else counted here is read off their positions.
        other = np.flatnonzero(~(is_letter | view.is_space))
        other_byte = data[other]
        symbols = view.count_at(other[other_byte == ord("#")]) + _ellipses(view, other[other_byte == ord(".")])
        if not view.ascii:
            leads = view.leads
            symbols = symbols + view.count_at(leads[view.peek(leads, 3) == _ELLIPSES[1]])
        alpha_words = n_words - _letterless_words(view, other)
        non_alpha = view.count_at(other) - (view.count_at(view.continuations) if not view.ascii else 0)
        digits = view.count_at(other[other_byte - np.uint8(ord("0")) < 10])
        lines = view.lines
        bullet, ellipsis = self._line_marks(view, lines)
        n_lines = lines.per_record()
        return {
            "symbol_word_ratio": ratio(symbols, n_words),
            "alpha_word_fraction": ratio(alpha_words, n_words),
            "digit_ratio": ratio(digits, non_space),
            "non_alpha_ratio": ratio(non_alpha, non_space),
            "bullet_line_fraction": ratio(lines.per_record(bullet.astype(np.float64)), n_lines),
            "ellipsis_line_fraction": ratio(lines.per_record(ellipsis.astype(np.float64)), n_lines),
        }

    @staticmethod
    def _line_marks(view: TextBytes, lines: Segments) -> tuple[np.ndarray, np.ndarray]:
        """Per line: starts with a bullet (after leading spaces); ends with an ellipsis (before trailing ones)."""
        if len(lines) == 0:
            return np.zeros(0, bool), np.zeros(0, bool)
        words = view.words
        # The line's first word starts at its first non-space byte, and its last word ends after its
        # last one (a line starts after a newline or at a record's start, and ends at a newline).
        head = _skip_spaces(view.is_space, lines.start, lines.end, 1)
        tail = _skip_spaces(view.is_space, lines.end - 1, lines.start - 1, -1) + 1
        rest = np.flatnonzero(head - lines.start > _SCAN)  # long indents: the words say where they end
        if len(rest):  # the first word starting in the line, else its end
            first = locate(words.start, lines.start[rest])
            starts = words.start[np.minimum(first, len(words) - 1)] if len(words) else lines.end[rest]
            head[rest] = np.where(first < len(words), np.minimum(starts, lines.end[rest]), lines.end[rest])
        rest = np.flatnonzero(lines.end - tail > _SCAN)
        if len(rest):  # the last word ending in the line, else its start
            last = locate(words.end, lines.end[rest], side="right") - 1
            ends = words.end[np.maximum(last, 0)] if len(words) else lines.start[rest]
            tail[rest] = np.where((last >= 0) & (ends > lines.start[rest]), ends, lines.start[rest])
        has_words = head < lines.end
        at_head = view.peek(head, 3)
        bullet = np.isin(at_head & np.uint64(0xFF), _BULLETS_ASCII) | np.isin(at_head, _BULLETS_UTF8)
        ellipsis = np.isin(view.peek(tail - 3, 3), _ELLIPSES) & (tail >= 3)
        return bullet & has_words, ellipsis & has_words

    def rules(self) -> list[Rule]:
        return bounds(
            self,
            [
                ("symbol_word_ratio", "max_symbol_word_ratio", False),
                ("alpha_word_fraction", "min_alpha_word_fraction", True),
                ("digit_ratio", "max_digit_ratio", False),
                ("non_alpha_ratio", "max_non_alpha_ratio", False),
                ("bullet_line_fraction", "max_bullet_line_fraction", False),
                ("ellipsis_line_fraction", "max_ellipsis_line_fraction", False),
            ],
        )
