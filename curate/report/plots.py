"""Plots as inline SVG strings (matplotlib's object API: no pyplot state, safe in server threads).

Every figure's element ids get a per-figure prefix so several SVGs can live in one HTML page
without their clip paths colliding; dense scatters are rasterised to an embedded PNG so a map of
thousands of points stays small. Nothing here reads files: callers pass the report data.
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
from matplotlib.figure import Figure

matplotlib.rcParams["svg.hashsalt"] = "curate-report"  # stable ids → byte-stable reports
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (selectable, searchable, small)

COLORS = {
    "pool": "#9aa5b1",
    "selection": "#d9480f",
    "target": "#1971c2",
    "selected": "#d9480f",
    "not selected": "#6c757d",
    "a": "#d9480f",
    "b": "#1971c2",
}
_ID = re.compile(r'(id="|url\(#|href="#)')


def _svg(fig: Figure, key: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined
    return _ID.sub(lambda m: f"{m.group(1)}{key}-", text)


MAX_BARS = 30  # categories drawn one by one; the rest become one "other" bar, so labels stay readable


def top_categories(names: list[str], series: dict[str, list | None], limit: int = MAX_BARS):
    """(names, series) with only the ``limit - 1`` categories of largest share (in any series) kept and
    the rest summed into "other (N more)"; unchanged when there are at most ``limit``."""
    present = {k: np.asarray(v, np.float64) for k, v in series.items() if v is not None}
    if len(names) <= limit or not present:
        return names, series
    peak = np.max(np.vstack(list(present.values())), axis=0)
    keep = np.sort(np.argsort(-peak, kind="stable")[: limit - 1])
    rest = np.setdiff1d(np.arange(len(names)), keep)
    out = {k: (None if v is None else [*present[k][keep].tolist(), float(present[k][rest].sum())])
           for k, v in series.items()}  # fmt: skip
    return [*(names[i] for i in keep), f"other ({len(rest)} more)"], out


def grouped_bars(key: str, names: list[str], series: dict[str, list | None], title: str, ylabel: str) -> str:
    """Side-by-side bars per category, one colour per series (pool / selection / target); past
    ``MAX_BARS`` categories the smallest are grouped into one "other" bar."""
    names, series = top_categories(names, series)
    present = {k: v for k, v in series.items() if v is not None}
    fig = Figure(figsize=(min(14.0, max(6.0, 0.3 * len(names) * len(present))), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / max(len(present), 1)
    x = np.arange(len(names))
    for i, (label, values) in enumerate(present.items()):
        ax.bar(x + (i - (len(present) - 1) / 2) * width, values, width, label=label, color=COLORS.get(label))
    short = [n if len(n) <= 24 else n[:23] + "…" for n in names]
    ax.set_xticks(x, short, rotation=30 if max(map(len, short), default=0) > 6 else 0, ha="right")
    return _finish(fig, ax, key, title, ylabel)


def _finish(fig: Figure, ax, key: str, title: str, ylabel: str) -> str:
    """The house style of the bar and histogram charts: titled, unframed legend, open top and right."""
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, key)


def scatter_map(key: str, data: dict) -> str:
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    for label, size, alpha in (("pool", 6, 0.35), ("selection", 9, 0.7), ("target", 14, 0.9)):
        pts = data.get(label)
        if pts:
            p = np.asarray(pts)
            ax.scatter(p[:, 0], p[:, 1], s=size, alpha=alpha, c=COLORS[label], label=f"{label} ({len(p)})",
                       rasterized=True, linewidths=0)  # fmt: skip
    ev = data.get("explained_variance", [0, 0])
    ax.set_xlabel(f"PC1 ({ev[0]:.1%} of pool variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.1%})")
    ax.legend(frameon=False, markerscale=2)
    ax.set_title("Embeddings (PCA fitted on a pool sample)")
    return _svg(fig, key)


def histogram(key: str, series: dict[str, dict], title: str, xlabel: str, density: bool = True) -> str:
    """Step histograms from precomputed ``{"hist": {edges, counts}}`` summaries (shared edges)."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    for label, stats in series.items():
        if not stats or not stats.get("n"):
            continue
        edges = np.asarray(stats["hist"]["edges"])
        counts = np.asarray(stats["hist"]["counts"], np.float64)
        if density:
            counts = counts / max(counts.sum(), 1.0)
        ax.stairs(counts, edges, label=f"{label} (n={stats['n']})", color=COLORS.get(label, "#d9480f"),
                  fill=len(series) == 1, alpha=0.8)  # fmt: skip
    ax.set_xlabel(xlabel)
    return _finish(fig, ax, key, title, "share of records" if density else "records")


def mixture_lines(key: str, odm: dict) -> str:
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.add_subplot()
    w = np.asarray(odm["weights"], np.float64)
    steps = np.asarray(odm["steps"])
    if w.size:
        ax.stackplot(steps, w.T, labels=odm["groups"], alpha=0.85)
    ax.set_xlabel("step")
    ax.set_ylabel("mixture weight")
    ax.set_ylim(0, 1)
    ax.set_title("Online mixture weights over steps")
    ax.legend(frameon=False, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _svg(fig, key)
