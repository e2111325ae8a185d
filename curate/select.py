"""The one selection entry point behind the CLI, pipeline files and the REST API."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from curate.config import Settings
from curate.errors import InputError
from curate.io import atomic_path
from curate.manifest import manifest_id, pool_ref, read_manifest, write_manifest
from curate.metrics import common_metrics
from curate.pool import Pool
from curate.quality import MetricInputs, compute_all, manifest_metrics, target_vectors
from curate.selectors.base import (
    SelectionContext,
    SelectorParams,
    budget_warnings,
    describe_budget,
    get_selector,
    parse_budget,
    parse_params,
    resolve_budget,
)
from curate.target import resolve_target


def run_selection(
    settings: Settings,
    *,
    pool: str,
    selector: str,
    budget: str | int | float,
    params: dict | SelectorParams | None = None,
    seed: int = 0,
    target: str | None = None,
    out: str | Path | None = None,
    lineage: dict | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Select from ``pool`` and return the manifest (an existing identical one is returned as is)."""
    cls = get_selector(selector)
    resolved = parse_params(cls, params)
    requested = parse_budget(budget)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}", field="seed")
    the_pool = Pool.load(settings, pool)
    the_target = resolve_target(settings, target, domain_fields=(the_pool.info["fields"].get("domain"), "domain"))
    if the_target is not None and not cls.uses_target:
        raise InputError(f"selector '{cls.name}' does not use a target; drop --target", field="target")
    if the_target is None and cls.requires_target:
        raise InputError(f"selector '{cls.name}' needs --target (a file of texts or a pool name)", field="target")
    if requested == "auto" and not cls.supports_auto_budget:
        raise InputError(
            f"selector '{cls.name}' cannot choose its own budget; give a count or a fraction", field="budget"
        )
    k, clipped = resolve_budget(requested, the_pool.n_records)
    sel_ref = {"name": cls.name, "version": cls.version}
    params_json = resolved.model_dump(mode="json")
    target_ref = the_target.ref() if the_target else None
    existing = settings.manifests_dir / manifest_id(
        pool_ref(the_pool), sel_ref, params_json, requested, seed, target_ref
    )
    if (existing / "manifest.json").exists():
        doc = read_manifest(existing)
    else:
        ctx = SelectionContext(
            the_pool, k, seed, the_target, progress or (lambda fraction, message: None), requested == "auto"
        )
        selection = cls(resolved).select(ctx)
        ctx.progress(0.95, "metrics")
        vectors = target_vectors(the_pool, the_target, compute=False)  # never encodes: only what is at hand
        inputs = MetricInputs(the_pool, the_target, seed, target_embeddings=vectors)
        quality = manifest_metrics(compute_all(inputs, np.asarray(selection.indices, np.int64), when_ready=True))
        # the shared metrics win over a selector's own number of the same name: one definition
        metrics = {**common_metrics(the_pool, selection.indices, clipped), **selection.metrics, **quality}
        selected = int(len(selection.indices))
        doc, _ = write_manifest(
            settings,
            pool=the_pool,
            selector=sel_ref,
            params=params_json,
            budget={"requested": requested, "selected": selected},
            seed=seed,
            target=target_ref,
            selection=selection,
            metrics=metrics,
            lineage=lineage,
            warnings=budget_warnings(requested, the_pool.n_records, k, selected),
            budget_note=describe_budget(requested, the_pool.n_records, k),
            target_source=the_target,
        )
    if out is not None:
        src = Path(doc["path"])
        with atomic_path(Path(out), directory=True) as tmp:
            tmp.rmdir()
            shutil.copytree(src, tmp)
    return doc
