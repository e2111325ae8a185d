"""Uniform sampling without replacement: the baseline every other selector must beat."""

from __future__ import annotations

from curate.selectors.base import Selection, SelectionContext, Selector, SelectorParams, register


class RandomParams(SelectorParams):
    pass


@register
class RandomSelector(Selector):
    name = "random"
    description = "Uniform random sample without replacement; weight 1. The baseline for every metric."
    Params = RandomParams

    def select(self, ctx: SelectionContext) -> Selection:
        order = ctx.rng().choice(ctx.pool.n_records, size=ctx.budget, replace=False)
        return Selection(indices=order.astype("int64"))
