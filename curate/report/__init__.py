"""Selection reports: what a subset kept, against its pool, its target and random subsets.

``write_report`` is the one entry point behind ``curate manifest report`` and
``GET /v1/manifests/{id}/report``; ``diff`` compares two manifests for both ``curate manifest
diff`` and ``GET /v1/manifests/{a}/diff/{b}``. Manifests are immutable, so a rendered report is
cached under ``CURATE_HOME/reports`` by manifest id (+ compared manifest); not under the shared
``CURATE_CACHE_DIR``, since a report also shows catalog facts (pool id and name) of its home.
"""

from __future__ import annotations

from pathlib import Path

from curate.config import Settings
from curate.eval.store import eval_files
from curate.io import atomic_path
from curate.records import sha256_hex
from curate.report.data import collect
from curate.report.diff import diff
from curate.report.html import render_diff, render_index, render_report

__all__ = ["build_report", "cached_report", "diff", "render_diff", "render_index", "write_report"]


def build_report(settings: Settings, path: Path, *, target: str | None = None, against: Path | None = None):
    """(html, data) for the manifest in ``path``; ``against`` adds a comparison section."""
    data = collect(settings, path, target=target)
    compared = diff(path, against) if against is not None else None
    return render_report(data, compared), data


def write_report(settings: Settings, path: Path, out: Path, **kw) -> dict:
    html, data = build_report(settings, path, **kw)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return data


def cached_report(settings: Settings, path: Path, against: Path | None = None) -> Path:
    """The report file for a catalogued manifest, rendered once (reports depend only on immutable
    inputs: the manifest, its pool's features and its target)."""
    name = path.name + (f"-vs-{against.name}" if against is not None else "")
    evals = eval_files(settings, path.name)
    if evals:  # a stored eval is part of the report: a new one renders it again
        name += "-evals-" + sha256_hex("\n".join(p.name for p in evals))[:12]
    out = settings.root / "reports" / f"{name}.html"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_report(settings, path, out, against=against)
    return out
