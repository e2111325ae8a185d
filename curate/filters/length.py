"""Length: characters, words and mean word length (Gopher's document-length and word-length rules)."""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from curate.filters.base import FilterParams, QualityFilter, Rule, bounds, ratio
from curate.tokens import TextBytes


class LengthParams(FilterParams):
    min_words: int | None = Field(50, ge=0, description="Fewest whitespace-separated words (Gopher: 50).")
    max_words: int | None = Field(100_000, ge=0, description="Most words (Gopher: 100,000).")
    min_chars: int | None = Field(None, ge=0, description="Fewest characters (off by default).")
    max_chars: int | None = Field(None, ge=0, description="Most characters (off by default).")
    min_mean_word_length: float | None = Field(3.0, ge=0, description="Gopher: mean word length ≥ 3 characters.")
    max_mean_word_length: float | None = Field(10.0, ge=0, description="Gopher: mean word length ≤ 10 characters.")


def non_space_chars(view: TextBytes) -> np.ndarray:
    """Characters that are not ASCII whitespace: every such byte is inside a word, so it is the
    words' bytes per record less the UTF-8 continuation bytes among them."""
    words = view.words
    total = np.concatenate(([0], np.cumsum(words.end - words.start)))[words.bounds]
    word_bytes = np.diff(total)
    return word_bytes if view.ascii else word_bytes - view.count_at(view.continuations)


class LengthFilter(QualityFilter):
    name = "length"
    Params = LengthParams
    params: LengthParams

    def measure(self, texts: pl.Series, view: TextBytes) -> dict[str, np.ndarray]:
        words = view.words.per_record().astype(np.int64)
        return {
            "chars": view.n_chars,
            "words": words,
            "mean_word_length": ratio(non_space_chars(view), words),
        }

    def rules(self) -> list[Rule]:
        return bounds(
            self,
            [
                ("words", "min_words", True),
                ("words", "max_words", False),
                ("chars", "min_chars", True),
                ("chars", "max_chars", False),
                ("mean_word_length", "min_mean_word_length", True),
                ("mean_word_length", "max_mean_word_length", False),
            ],
        )
