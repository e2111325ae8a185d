"""Selectors register themselves on import; add a module here to add a selector."""

from curate.selectors import coverage, dsir, odm, random, smart, stratified, tarot  # noqa: F401
from curate.selectors.base import REGISTRY, Selection, SelectionContext, Selector, get_selector

__all__ = ["REGISTRY", "Selection", "SelectionContext", "Selector", "get_selector"]
