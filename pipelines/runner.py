"""Run a pipeline file: ingest (cached stages are skipped), then every selection in order."""

from __future__ import annotations

from pathlib import Path

from curate.config import Settings
from curate.dedup import dedup_into_pool
from curate.errors import InputError
from curate.executors import use_executor
from curate.ingest import IngestParams, ingest
from curate.progress import selection_progress
from curate.quality import format_headline
from curate.records import canonical_json, sha256_hex
from curate.select import run_selection
from curate.stages.semdedup import SemDedupParams
from curate.target import locate_target
from pipelines.spec import load_spec

_HEADLINE = (  # dedup's, then the selectors' quality numbers
    "removed",
    "duplicate_fraction",
    "kl_reduction",
    "ot_distance",
    "coverage",
    "domain_tv",
    "mean_tokens",
    "objective",
    "max_share_deviation",
    "selected_fraction",
)


def _headline(metrics: dict) -> dict:
    """The selector's quality numbers, each followed by the same number for a random subset."""
    out = {}
    for key in _HEADLINE:
        if key in metrics:
            out[key] = metrics[key]
            if f"{key}_random" in metrics:
                out[f"{key}_random"] = metrics[f"{key}_random"]
    return out


def run_pipeline(path: Path, settings: Settings, progress=None) -> dict:
    spec = load_spec(Path(path))
    run_id = sha256_hex(canonical_json(spec.model_dump(mode="json")))[:16]
    base = Path(path).resolve().parent

    def beside_pipeline(raw: str) -> Path:
        return (base / raw).expanduser().resolve()

    targets = []  # resolved before anything runs: a missing target file fails fast
    for i, sel in enumerate(spec.selections):
        try:  # curate's one rule (a pool wins); a file is relative to the pipeline file
            targets.append(locate_target(settings, sel.target, check_path=beside_pipeline))
        except InputError as exc:
            raise InputError(exc.message, file=str(path), field=f"selections.{i}.target") from None
    ingest_params = IngestParams(**spec.ingest.model_dump(exclude={"path", "pool"}))
    report = ingest(settings, spec.ingest.path, spec.ingest.pool, ingest_params, progress=progress)
    rows, pool = [], spec.ingest.pool
    if spec.dedup is not None:
        pool = spec.dedup.pool or f"{spec.ingest.pool}-dedup"
        dedup = SemDedupParams(**spec.dedup.model_dump(exclude={"pool"}))
        doc, _ = dedup_into_pool(settings, pool=spec.ingest.pool, into=pool, params=dedup, ingest_params=ingest_params)
        rows.append(_row("dedup", "semdedup", doc))
    with use_executor(ingest_params.executor):  # e.g. DSIR scoring on the same cluster
        for sel, target in zip(spec.selections, targets, strict=True):
            doc = run_selection(
                settings,
                pool=pool,
                selector=sel.selector,
                budget=sel.budget,
                params=sel.params,
                seed=sel.seed,
                target=target,
                lineage={"pipeline": spec.name or Path(path).name, "run_id": run_id},
                progress=selection_progress(progress, f"select {sel.name or sel.selector}"),
            )
            rows.append(_row(sel.name or sel.selector, sel.selector, doc))
    return {"pipeline": spec.name, "run_id": run_id, "ingest": report, "pool": pool, "selections": rows}


def _row(name: str, selector: str, doc: dict) -> dict:
    return {
        "name": name,
        "selector": selector,
        "selected": doc["budget"]["selected"],
        "metrics": _headline(doc["metrics"]),
        "manifest": doc["id"],
        "path": doc["path"],
    }


def format_summary(result: dict) -> str:
    pool = result["ingest"]["pool"]
    stages = ", ".join(
        f"{k} {'cached' if v.get('cached') else str(v.get('records_per_s')) + ' rec/s'}"
        for k, v in result["ingest"]["stages"].items()
    )
    head = [
        f"pipeline {result['pipeline'] or ''} run {result['run_id']}",
        f"pool {pool['name']}: {pool['n_records']} records ({stages})",
        *([f"selections run on the deduplicated pool {result['pool']}"] if result["pool"] != pool["name"] else []),
        "",
    ]
    table = [("selection", "selector", "selected", "metrics", "manifest path")]
    for r in result["selections"]:
        metrics = format_headline(r["metrics"])  # each with its random baseline and which way is better
        table.append((r["name"], r["selector"], str(r["selected"]), metrics, r["path"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(head + lines)
