"""The filter contract: measure every record (vectorised), then keep or drop it by explicit rules.

As in NeMo Curator's ``score_document`` / ``keep_document`` split, measuring and deciding are
separate: a filter returns one value per record for each thing it measures, and its rules compare
those values with thresholds from its pydantic parameters. The values are stored for every record,
so a manifest can say why each dropped record went (the first rule it failed) and by how much.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from curate.tokens import TextBytes


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Rule:
    """``value`` must be ≥ ``low`` and ≤ ``high`` (or, for a label, one of ``allowed``)."""

    name: str  # e.g. "length.min_words": the family and the parameter that set it
    value: str  # column of the measured values
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] | None = None

    def passes(self, values: pl.DataFrame) -> np.ndarray:
        col = values[self.value]
        if self.allowed is not None:
            return col.is_in(list(self.allowed)).fill_null(False).to_numpy()
        x = col.to_numpy().astype(np.float64)
        ok = np.ones(len(x), bool)
        if self.low is not None:
            ok &= x >= self.low
        if self.high is not None:
            ok &= x <= self.high
        return ok


class QualityFilter(ABC):
    """One family of measurements (length, characters, repetition, language) and its rules."""

    name: ClassVar[str]
    Params: ClassVar[type[FilterParams]]

    def __init__(self, params: FilterParams) -> None:
        self.params = params

    @abstractmethod
    def measure(self, texts: pl.Series, view: TextBytes) -> dict[str, np.ndarray | pl.Series]:
        """Per-record values, one array per name (names are prefixed with the family when stored)."""

    @abstractmethod
    def rules(self) -> list[Rule]:
        """The thresholds in force (a parameter set to None adds no rule)."""

    def bound(self, value: str, param: str, *, low: bool) -> Rule | None:
        """The rule ``value ≥ params.param`` (low) or ``value ≤ params.param``, unless it is off."""
        threshold = getattr(self.params, param)
        if threshold is None:
            return None
        name, column = f"{self.name}.{param}", f"{self.name}.{value}"
        return Rule(name, column, low=threshold) if low else Rule(name, column, high=threshold)


def bounds(family: QualityFilter, specs: list[tuple[str, str, bool]]) -> list[Rule]:
    """The rules in force among (value, parameter, is-a-lower-bound) triples."""
    return [r for r in (family.bound(v, p, low=low) for v, p, low in specs) if r is not None]


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (an empty text has no symbols, digits or repeats)."""
    out = np.zeros(len(num), np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out
