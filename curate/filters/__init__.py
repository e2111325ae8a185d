"""Quality filters: one file per family of measurements, combined by one step's parameters.

``FilterSpec`` is the ``filter`` step of a pipeline file (and of a REST pipeline body): each family
present runs with its parameters (an empty mapping means the family's defaults, which are the
Gopher paper's where it gives one). A record is dropped when it fails any rule; its ``reason`` is
the first rule it failed, in the order families and rules are listed here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.filters.base import FilterParams, QualityFilter, Rule
from curate.filters.characters import CharacterFilter, CharacterParams
from curate.filters.language import LanguageFilter, LanguageParams
from curate.filters.length import LengthFilter, LengthParams
from curate.filters.repetition import RepetitionFilter, RepetitionParams
from curate.tokens import TextBytes

FAMILIES: dict[str, type[QualityFilter]] = {
    f.name: f for f in (LengthFilter, CharacterFilter, RepetitionFilter, LanguageFilter)
}


class FilterSpec(BaseModel):
    """Which filter families run, each with its own parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: LengthParams | None = Field(None, description="Characters, words, mean word length.")
    characters: CharacterParams | None = Field(None, description="Symbol, letter, digit, bullet, ellipsis ratios.")
    repetition: RepetitionParams | None = Field(None, description="Gopher's duplicate line / n-gram fractions.")
    language: LanguageParams | None = Field(None, description="fastText lid.176 language id (offline).")

    @model_validator(mode="after")
    def _at_least_one(self) -> FilterSpec:
        if not self.families():
            raise ValueError("a filter step needs at least one of: " + ", ".join(FAMILIES))
        return self

    def families(self) -> list[QualityFilter]:
        return [FAMILIES[name](params) for name in FAMILIES if (params := getattr(self, name)) is not None]

    def rules(self) -> list[Rule]:
        return [rule for f in self.families() for rule in f.rules()]


BATCH = 4096  # records measured at once: their byte, word and hash arrays stay in the CPU's caches


def measure(spec: FilterSpec, texts: pl.Series) -> pl.DataFrame:
    """Every family's per-record values, as columns ``<family>.<value>``.

    Records are independent, so a long series is measured ``BATCH`` records at a time: each pass
    over a batch's arrays (a few hundred kB) then runs from cache, where one pass over a 20k-record
    unit's (several MB) is memory-bound; measured 1.3-2x faster for the word split and hashes. The
    batches' columns are joined as arrays, and one frame is built at the end."""
    batches = [_measure(spec, texts.slice(i, BATCH)) for i in range(0, len(texts), BATCH)] or [_measure(spec, texts)]
    columns = {
        name: (
            pl.concat([b[name] for b in batches])
            if isinstance(first, pl.Series)
            else np.concatenate([b[name] for b in batches])
        )
        for name, first in batches[0].items()
    }
    return pl.DataFrame(columns)


def _measure(spec: FilterSpec, texts: pl.Series) -> dict[str, np.ndarray | pl.Series]:
    view = TextBytes(texts)
    columns: dict[str, np.ndarray | pl.Series] = {}
    for family in spec.families():
        for key, values in family.measure(texts, view).items():
            columns[f"{family.name}.{key}"] = values
    return columns


def decide(spec: FilterSpec, values: pl.DataFrame) -> tuple[np.ndarray, pl.Series]:
    """(kept mask, reason per record: the first failed rule's name, null when kept)."""
    rules = spec.rules()
    first_failed = np.full(values.height, -1, np.int64)
    kept = np.ones(values.height, bool)
    for i, rule in enumerate(rules):
        failed = kept & ~rule.passes(values)
        first_failed[failed] = i
        kept &= ~failed
    names = pl.Series([r.name for r in rules], dtype=pl.String)
    reason = pl.Series("reason", first_failed).replace_strict(
        list(range(len(rules))), names, default=None, return_dtype=pl.String
    )
    return kept, reason


__all__ = [
    "FAMILIES",
    "CharacterParams",
    "FilterParams",
    "FilterSpec",
    "LanguageParams",
    "LengthParams",
    "RepetitionParams",
    "Rule",
    "decide",
    "measure",
]
