"""Run a planned pipeline step by step. A step whose inputs, parameters and output features are
unchanged is skipped: its marker (``CURATE_HOME/steps/<key>.json``, written only after its manifest
and pool exist) names what it made, and the key chains the parent's output identity, so any change
upstream re-runs everything below it. Artifacts are atomic, so a run killed mid-step (kill -9)
resumes at that step."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from curate import catalog
from curate.config import Settings
from curate.dedup import dedup_pool
from curate.errors import NotFoundError
from curate.executors import ExecutorSpec, use_executor
from curate.filters.run import filter_pool
from curate.ingest import IngestParams, ingest
from curate.io import write_json
from curate.pool import Pool
from curate.progress import selection_progress
from curate.records import canonical_json, sha256_hex
from curate.select import run_selection
from curate.steps.derive import derive_pool, union_pool
from curate.steps.plan import PlannedStep, plan
from curate.steps.spec import FilterStep, IngestStep, PipelineSpec, SelectStep

ProgressFn = Callable[[str, int, int], None]
MARKER_VERSION = 1
HEADLINE = (  # dedup's and filters', then the selectors' quality numbers
    "removed",
    "duplicate_fraction",
    "removed_fraction",
    "kl_reduction",
    "ot_distance",
    "coverage",
    "domain_tv",
    "mean_tokens",
    "objective",
    "max_share_deviation",
    "selected_fraction",
)


def headline(metrics: dict) -> dict:
    """The quality numbers worth a summary line, each followed by the same number for a random subset."""
    out = {}
    for key in HEADLINE:
        if key in metrics:
            out[key] = metrics[key]
            if f"{key}_random" in metrics:
                out[f"{key}_random"] = metrics[f"{key}_random"]
    return out


def _file_identity(path: str) -> dict:
    st = os.stat(path)
    return {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


class Runner:
    def __init__(
        self,
        settings: Settings,
        spec: PipelineSpec,
        planned: list[PlannedStep],
        ingest_step: IngestStep,
        name: str,
        progress: ProgressFn | None,
    ) -> None:
        self.settings, self.spec, self.planned, self.ingest_step = settings, spec, planned, ingest_step
        self.name = name
        self.run_id = sha256_hex(canonical_json(spec.model_dump(mode="json", by_alias=True)))[:16]
        self.progress = progress or (lambda stage, done, total: None)
        self.base = ingest_step.ingest_params()
        self.outputs: dict[int, dict] = {}  # step index → {"pool": {...}, "manifest": {...}, "row": {...}}
        self.rows: list[dict] = []
        self.markers = settings.root / "steps"

    # --- keys and markers ----------------------------------------------------------------------

    def pool_name(self, p: PlannedStep) -> str:
        return p.step.pool or f"{self.name}-{p.name}"

    def features(self, p: PlannedStep) -> IngestParams:
        """How this step's output pool is ingested: the ingest step's feature settings, embed and k decided
        by the plan; a derived pool always replaces its older self."""
        update = {"embed": p.embed, "clusters": p.clusters}
        if p.step is not self.ingest_step:
            update["replace"] = True
        return self.base.model_copy(update=update)

    def key(self, i: int) -> str:
        p = self.planned[i]
        # where the work runs never changes its result (executors are bit-for-bit alike): not in the key
        step = p.step.model_dump(mode="json", by_alias=True, exclude={"name", "from_", "executor"})
        if isinstance(p.step, IngestStep):
            files = [p.step.path] if p.step.path else [s.path for s in p.step.sources]
            upstream = [_file_identity(f) for f in files]
        else:
            upstream = self.outputs[p.parent]["pool"]["id"]
        payload = {
            "v": MARKER_VERSION,
            "step": step,
            "upstream": upstream,
            "pool": self.pool_name(p) if p.makes_pool else None,
            "features": self.features(p).model_dump(mode="json", exclude={"executor"}) if p.makes_pool else None,
            "target": _file_identity(p.target) if p.target and Path(p.target).is_absolute() else p.target,
        }
        return sha256_hex(canonical_json(payload))[:32]

    def cached(self, key: str) -> dict | None:
        marker = self.markers / f"{key}.json"
        if not marker.exists():
            return None
        out = json.loads(marker.read_text())
        try:
            if out.get("pool"):
                catalog.get_pool(self.settings, out["pool"]["id"])
        except NotFoundError:
            return None
        if out.get("manifest") and not (Path(out["manifest"]["path"]) / "manifest.json").exists():
            return None
        return out

    # --- running -------------------------------------------------------------------------------

    def run(self) -> None:
        executor = self.spec.executor or self.base.executor
        with use_executor(executor):
            for i, p in enumerate(self.planned):
                key = self.key(i)
                out = self.cached(key)
                if out is None:
                    out = self.execute(i, p)
                    self.markers.mkdir(parents=True, exist_ok=True)
                    write_json(self.markers / f"{key}.json", out)
                    out["row"]["cached"] = False
                else:
                    out["row"]["cached"] = True
                self.outputs[i] = out
                self.rows.append(out["row"])

    def report(self, p: PlannedStep, stage: str) -> Callable[[int, int], None]:
        return lambda done, total: self.progress(f"{p.name}:{stage}", done, total)

    def ingest_report(self, p: PlannedStep) -> Callable[[str, int, int], None]:
        return lambda stage, done, total: self.progress(f"{p.name}:{stage}", done, total)

    def lineage(self, p: PlannedStep) -> dict:
        parent = self.outputs.get(p.parent, {}) if p.parent is not None else {}
        parents = [parent["manifest"]["id"]] if parent.get("manifest") else []
        return {"pipeline": self.name, "run_id": self.run_id, "step": p.name, "parents": parents}

    def execute(self, i: int, p: PlannedStep) -> dict:
        if isinstance(p.step, IngestStep):
            return self.run_ingest(p)
        parent = Pool.load(self.settings, self.outputs[p.parent]["pool"]["id"])
        lineage = self.lineage(p)
        if isinstance(p.step, FilterStep):
            doc, kept = filter_pool(self.settings, parent, p.step.filter_spec(), lineage, self.report(p, "filter"))
            row = {"kind": "filter", "removed_by": doc["metrics"]["removed_by"]}
        elif isinstance(p.step, SelectStep):
            doc = run_selection(
                self.settings,
                pool=parent.id,
                selector=p.step.selector,
                budget=p.step.budget,
                params=p.step.params,
                seed=p.step.seed,
                target=p.target,
                lineage=lineage,
                progress=selection_progress(self.progress, f"{p.name}:select"),
            )
            kept = _rows_of(parent, doc) if p.readers else None
            row = {"kind": "select", "selector": p.step.selector}
        else:
            doc, dups = dedup_pool(self.settings, parent, p.step.params(), lineage, self.report(p, p.step.method))
            kept = dups.kept
            row = {"kind": "dedup", "method": p.step.method}
        out = {"manifest": {"id": doc["id"], "path": doc["path"]}, "pool": None}
        row.update(
            records_in=parent.n_records,
            records_out=doc["budget"]["selected"],
            metrics=headline(doc["metrics"]),
            manifest=doc["id"],
            path=doc["path"],
        )
        if p.readers:
            derived = derive_pool(
                self.settings,
                parent,
                kept,
                self.pool_name(p),
                self.features(p),
                {"manifest": doc["id"], "parent": parent.id, "step": p.name},
                self.ingest_report(p),
            )
            out["pool"] = {k: derived["pool"][k] for k in ("id", "name", "n_records")}
            row["pool"] = derived["pool"]["name"]
        out["row"] = {"step": p.name, "label": p.label, **row}
        return out

    def run_ingest(self, p: PlannedStep) -> dict:
        step, params = p.step, self.features(p)
        name = self.pool_name(p)
        if step.path is not None:
            report = ingest(self.settings, step.path, name, params, progress=self.ingest_report(p))
            sources = None
        else:
            pools, sources = [], {}
            for src in step.sources:
                fields = {
                    "text_field": src.text_field,
                    "id_field": src.id_field,
                    "domain_field": src.domain_field,
                    "embed": False,
                    "clusters": 0,
                }
                rep = ingest(
                    self.settings,
                    src.path,
                    f"{name}.{src.label}",
                    params.model_copy(update=fields),
                    progress=self.ingest_report(p),
                )
                pools.append((src.label, Pool.load(self.settings, rep["pool"]["id"])))
                sources[src.label] = rep["read"]["records"]
            report = union_pool(
                self.settings,
                pools,
                name,
                params.model_copy(update={"replace": True}),
                step.prefix_ids,
                self.ingest_report(p),
            )
        pool = {k: report["pool"][k] for k in ("id", "name", "n_records")}
        row = {
            "step": p.name,
            "label": p.label,
            "kind": "ingest",
            "records_out": pool["n_records"],
            "pool": pool["name"],
            "sources": sources,
            "stages": {k: bool(v.get("cached")) for k, v in report["stages"].items()},
        }
        return {"pool": pool, "manifest": None, "row": row, "report": _jsonable(report)}


def _jsonable(report: dict) -> dict:
    return json.loads(json.dumps(report, default=str))


def _rows_of(pool: Pool, doc: dict) -> np.ndarray:
    ids = pl.read_parquet(Path(doc["path"]) / "subset.parquet", columns=["id"])
    return pool.scan().select("row_id", "id").join(ids.lazy(), on="id", how="semi").collect()["row_id"].to_numpy()


def run_spec(
    settings: Settings,
    spec: PipelineSpec,
    *,
    name: str,
    file: str | None = None,
    check_target=None,
    progress: ProgressFn | None = None,
) -> dict:
    """Plan (every check before anything runs), then run; on a failure the exception carries
    ``completed`` (the summary rows of the steps that did run)."""
    planned, ingest_step = plan(settings, spec, file=file, check_target=check_target)
    runner = Runner(settings, spec, planned, ingest_step, spec.name or name, progress)
    try:
        runner.run()
    except BaseException as exc:
        exc.completed = list(runner.rows)  # type: ignore[attr-defined]
        if hasattr(exc, "details") and isinstance(exc.details, dict):
            exc.details["completed"] = [
                {k: r.get(k) for k in ("step", "kind", "records_out", "manifest")} for r in runner.rows
            ]
        raise
    executor = spec.executor or runner.base.executor
    if isinstance(executor, str):
        executor = ExecutorSpec(kind=executor)
    result = {
        "pipeline": runner.name,
        "run_id": runner.run_id,
        "executor": executor.model_dump(mode="json"),
        "steps": runner.rows,
    }
    if spec.steps is None:  # the older form's result keys, kept for its callers
        first = runner.outputs[0]
        result["ingest"] = first["report"]
        if first["row"]["cached"]:
            result["ingest"]["stages"] = {k: {**v, "cached": True} for k, v in first["report"]["stages"].items()}
        read = next((p.parent for p in planned if isinstance(p.step, SelectStep)), 0)
        result["pool"] = runner.outputs[read]["pool"]["name"]
        result["selections"] = [  # the dedup row first, as before
            {
                "name": r["step"],
                "selector": r.get("selector") or "semdedup",
                "selected": r["records_out"],
                "metrics": r["metrics"],
                "manifest": r["manifest"],
                "path": r["path"],
            }
            for r in runner.rows
            if r["kind"] in ("select", "dedup")
        ]
    return result
