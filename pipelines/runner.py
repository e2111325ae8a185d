"""Run a pipeline file (``curate run``): plan every step, then run the ones not already done."""

from __future__ import annotations

from pathlib import Path

from curate.config import Settings
from curate.quality import format_headline
from curate.steps.plan import beside
from curate.steps.run import run_spec
from pipelines.spec import load_spec


def run_pipeline(path: Path, settings: Settings, progress=None) -> dict:
    spec = load_spec(Path(path))
    return run_spec(settings, spec, name=Path(path).stem, file=str(path), check_target=beside(path), progress=progress)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _metrics(row: dict) -> str:
    """Each metric with its random baseline and which way is better."""
    metrics = {k: v for k, v in row.get("metrics", {}).items() if k != "selected_fraction"}
    return format_headline(metrics)


def format_steps(rows: list[dict]) -> str:
    """One line per step: what it read and kept, its headline metrics, where its manifest is."""
    table = [("step", "kind", "in", "out", "metrics", "manifest / pool")]
    for r in rows:
        what = r["kind"] + (f" {r.get('method') or r.get('selector')}" if r.get("method") or r.get("selector") else "")
        where = r.get("path") or f"pool {r.get('pool')}"
        if r.get("cached"):
            what += " (cached)"
        table.append(
            (r["step"], what, str(r.get("records_in", "")), str(r.get("records_out", "")), _metrics(r), where)
        )
    return "\n".join(_table(table))


def format_summary(result: dict) -> str:
    if "selections" not in result:
        return f"pipeline {result['pipeline']} run {result['run_id']}\n\n" + format_steps(result["steps"])
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
    return "\n".join(head + _table(table))
