"""odm in the selector registry, so it is listed with its parameters like every other selector.

It is the one selector that lives across time: a training job opens a mixing session, asks for
batches and reports losses (curate.mixing, /v1/mixing/sessions). Running it as a one-shot batch
selection is refused by ``get_selector`` with a message that says how to drive it.
"""

from __future__ import annotations

from curate.algorithms.bandit import MixingParams
from curate.errors import InputError
from curate.selectors.base import Selection, SelectionContext, Selector, register


@register
class OnlineMixingSelector(Selector):
    name = "odm"
    description = (
        "Online data mixing (EXP3 bandit over domains or clusters, rewarded by a live training run's "
        "losses); driven through mixing sessions, frozen as a manifest."
    )
    Params = MixingParams
    online = True

    def select(self, ctx: SelectionContext) -> Selection:
        raise InputError("odm has no one-shot selection; open a mixing session instead", field="selector")
