"""Freezing a session: the records served so far as a manifest v1, weighted by the mixture."""

from __future__ import annotations

import numpy as np

from curate.config import Settings
from curate.metrics import common_metrics
from curate.mixing.records import rows_of
from curate.mixing.session import get_row, session_pool, steps_of
from curate.mixing.store import MixingStepRow, named_weights
from curate.records import canonical_json, sha256_hex
from curate.selectors.base import Selection

SELECTOR_REF = {"name": "odm", "version": "1"}
_SCHEDULE_ROWS = 500  # weight-schedule rows kept in a frozen manifest (the full history is in the catalog)


def freeze(settings: Settings, session_id: str) -> dict:
    """Write the records served so far as a manifest v1, weighted by the current mixture.

    Each group's mass is its current probability split evenly over its served records; the id
    hashes the session inputs and a digest of its whole step history, so the same session run
    (same seed, same feedback) always freezes to the same manifest.
    """
    row = get_row(settings, session_id)
    pool, index = session_pool(settings, row)
    steps = steps_of(settings, session_id)
    probs = np.asarray(row.state["probs"])
    served = rows_of(index, row.seed, [d for s in steps for d in s.draws])
    uniq, first = np.unique(served, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    label = np.empty(pool.n_records, np.int64)
    for g, members in enumerate(index.members):
        label[members] = g
    per_group = np.bincount(label[order], minlength=len(index.names))
    weights = probs[label[order]] / np.maximum(per_group[label[order]], 1)
    history = [[s.step, s.draws, s.losses] for s in steps]
    params = {
        **row.params,
        "group_by": row.group_by,
        "steps_issued": row.issued,
        "steps_applied": row.applied,
        "history_sha256": sha256_hex(canonical_json(history)),
    }
    mixture = {n: float(p) for n, p in zip(index.names, probs, strict=True)}
    selection = Selection(indices=order.astype(np.int64), weights=weights if len(order) else None, mixture=mixture)
    metrics = {
        **common_metrics(pool, order, False),
        "variant": row.params["variant"],
        "records_served": int(len(served)),
        "unique_records": int(len(order)),
        "updates": row.state["updates"],
        "epochs": dict(zip(index.names, row.epochs["epoch"], strict=True)),
        "mixture_time_average": _time_average(index.names, steps),
        "weight_schedule": _schedule(index.names, steps),
    }
    from curate.manifest import write_manifest  # manifest imports selectors; keep this module light

    doc, _ = write_manifest(
        settings,
        pool=pool,
        selector=dict(SELECTOR_REF),
        params=params,
        budget={"requested": int(len(order)), "selected": int(len(order))},
        seed=row.seed,
        target=None,
        selection=selection,
        metrics=metrics,
        lineage={"mixing_session": row.id},
    )
    return doc


def _time_average(names: list[str], steps: list[MixingStepRow]) -> dict[str, float] | None:
    if not steps:
        return None
    return named_weights(names, np.mean([s.probs for s in steps], axis=0))


def _schedule(names: list[str], steps: list[MixingStepRow]) -> dict:
    fed = [s for s in steps if s.weights is not None]
    if len(fed) > _SCHEDULE_ROWS:
        keep = np.unique(np.linspace(0, len(fed) - 1, _SCHEDULE_ROWS).round().astype(int))
        fed = [fed[i] for i in keep]
    weights = [[round(w, 8) for w in s.weights] for s in fed]
    return {"groups": names, "steps": [s.step for s in fed], "weights": weights}
