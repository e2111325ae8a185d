"""Server-side HTML: the selection report, the diff section and the index page.

One self-contained file: inline CSS and SVG, a Content-Security-Policy that forbids every network
fetch (so a report opened from disk or a mail attachment behaves the same), and the report data
as a JSON block (``<script type="application/json" id="report-data">``) for tools and tests.
"""

from __future__ import annotations

import json
from html import escape

from curate.report import plots
from curate.report.data import to_json

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.1rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.9em;background:#f6f8fa;padding:0 .2em;border-radius:3px;word-break:break-all}
.good{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.note{color:#57606a}
figure{margin:.5rem 0}svg{max-width:100%;height:auto}
"""


def _page(title: str, body: str, data: dict | None = None) -> str:
    block = ""
    if data is not None:  # "</" inside JSON would end the script element early
        block = '<script type="application/json" id="report-data">' + to_json(data).replace("</", "<\\/") + "</script>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main>{block}</body></html>\n"
    )


def _num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    return escape(str(v))


def _plain(v) -> str:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v)


def _kv(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _header(h: dict) -> str:
    sel, pool, budget = h["selector"], h["pool"], h["budget"]
    target = h.get("target")
    files = "<br>".join(
        f"<code>{escape(f['path'])}</code> sha256 <code>{escape(f['sha256'])}</code>"
        f" ({f['bytes']} bytes, {f['rows']} rows)"
        for f in h.get("files") or []
    )
    rows = [
        ("manifest", f"<code>{escape(h['id'])}</code>"),
        ("created", escape(str(h.get("created_at")))),
        (
            "pool",
            f"{escape(pool['name'])} (<code>{escape(pool['id'])}</code>), {pool['n_records']} records, "
            f"fingerprint <code>{escape(pool['fingerprint'])}</code>",
        ),
        ("selector", f"{escape(sel['name'])} v{escape(str(sel['version']))}"),
        ("params", f"<code>{escape(json.dumps(sel.get('params'), sort_keys=True))}</code>"),
        (
            "budget",
            f"requested {escape(str(budget['requested']))}, selected {budget['selected']}"
            + (f'<br><span class="note">{escape(h["budget_note"])}</span>' if h.get("budget_note") else ""),
        ),
        ("warnings", "<br>".join(f'<span class="bad">{escape(w)}</span>' for w in h.get("warnings") or []) or "none"),
        ("seed", escape(str(h["seed"]))),
        ("target", _target_cell(target)),
        ("files", files),
        ("lineage", f"<code>{escape(json.dumps(h.get('lineage'), sort_keys=True))}</code>"),
    ]
    return f'<section id="header"><h1>Selection report</h1>{_kv(rows)}</section>'


def _target_cell(target: dict | None) -> str:
    if not target:
        return "none"
    source = target.get("source") or {}
    where = source.get("path") or (f"pool {source.get('name')} ({source.get('pool')})" if source else "")
    copy = {k: v for k, v in (target.get("copy") or {}).items() if k != "embeddings_space"}
    kept = ", ".join(f"<code>{escape(v)}</code>" for v in copy.values())
    fingerprint = f"<code>{escape(target['fingerprint'])}</code>"
    return (
        f"{escape(target['kind'])}, {target['n_records']} records, fingerprint {fingerprint}"
        + (f"<br>from <code>{escape(where)}</code>" if where else "")
        + (f"<br>kept in the manifest as {kept}" if kept else "")
    )


def _metrics(data: dict) -> str:
    rows = []
    for m in data["metrics"]:
        if "skipped" in m:
            rows.append(
                f'<tr data-metric="{m["name"]}"><td>{m["name"]}</td><td colspan="4" class="note">'
                f"not computed: {escape(m['skipped'])}</td><td>{escape(m['description'])}</td></tr>"
            )
            continue
        verdict = (
            '<span class="good">better</span>' if m["better_than_random"] else '<span class="bad">not better</span>'
        )
        rows.append(
            f'<tr data-metric="{m["name"]}"><td>{m["name"]}</td><td class="num sel">{_num(m["selection"])}</td>'
            f'<td class="num rnd">{_num(m["random"])} ± {_num(m["random_std"])}</td>'
            f"<td>{_direction(m)}</td><td>{verdict}</td><td>{escape(m['description'])}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("metric", "selection", "random, same size (mean ± sd of 3)", "", "vs random", "what")
    )
    head = f"<tr>{head}</tr>"
    own = "".join(
        f"<tr><th>{escape(k)}</th><td><code>{escape(_plain(v))}</code></td></tr>"
        for k, v in sorted(data["manifest_metrics"].items())
    )
    return (
        '<section id="metrics"><h2>Selection quality, beside random subsets (computed now)</h2>'
        f"<table>{head}{''.join(rows)}</table>"
        f"<h3>Metrics recorded by the selector</h3><table>{own}</table></section>"
    )


def _direction(m: dict) -> str:
    if m["better"] != "closer":
        return f"{m['better']} is better"
    side = "target" if m.get("target") is not None else "pool"
    extra = f"; pool {_num(m['pool'])}" if side == "target" else ""
    return f"closer to the {side}'s {_num(m['reference'])} is better{extra}"


def _samples(h: dict) -> str:
    """A few selected texts of the most selected domains, beside each domain's shares."""
    samples = h.get("samples") or {}
    if not samples:
        return ""
    index = {n: i for i, n in enumerate(h["names"])}
    head = "<tr><th>domain</th><th>pool</th><th>selection</th><th>target</th><th>sample selected texts</th></tr>"
    rows = []
    for name, texts in samples.items():
        i = index[name]
        target = _num(h["target"][i]) if h.get("target") else "—"
        items = "".join(f"<li>{escape(t)}</li>" for t in texts)
        rows.append(
            f'<tr data-domain="{escape(name)}"><td>{escape(name)}</td><td class="num">{_num(h["pool"][i])}</td>'
            f'<td class="num">{_num(h["selection"][i])}</td><td class="num">{target}</td>'
            f"<td><ul>{items}</ul></td></tr>"
        )
    shown = f"{len(samples)} most selected of {len(h['names'])} domains"
    return f'<h3>Sample texts ({shown})</h3><table class="samples">{head}{"".join(rows)}</table>'


def _histograms(data: dict) -> str:
    parts = []
    for kind in ("domain", "cluster"):
        h = data["histograms"].get(kind)
        if not h:
            continue
        series = {"pool": h["pool"], "selection": h["selection"], "target": h["target"]}
        svg = plots.grouped_bars(f"hist-{kind}", h["names"], series, f"Share of records per {kind}", "share")
        body = f"<figure>{svg}</figure>" + (_samples(h) if kind == "domain" else "")
        parts.append(_section(f"{kind}s", f"{kind.title()}s: pool vs selection vs target", body))
    return "".join(parts)


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{heading}</h2>{body}</section>'


def _map(data: dict) -> str:
    if not data.get("map"):
        return ""
    return _section("map", "Embedding map", f"<figure>{plots.scatter_map('map', data['map'])}</figure>")


def _weights(data: dict) -> str:
    w = data["weights"]
    if not w.get("n"):
        return _section("weights", "Weights", '<p class="note">empty selection</p>')
    svg = plots.histogram("weights", {"selection": w}, "Weight distribution (mean 1)", "weight", density=False)
    stats = _kv([(k, _num(w[k])) for k in ("n", "mean", "std", "min", "median", "max")])
    return _section("weights", "Weights", f"<figure>{svg}</figure>{stats}")


def _scores(data: dict) -> str:
    s, parts = data["scores"], []
    if s.get("report"):
        r = s["report"]
        svg = plots.histogram(
            "score-report",
            {"selected": r["selected"], "not selected": r["not_selected"]},
            f"{r['name']}: selected vs not selected",
            r["description"],
        )
        means = _kv(
            [
                ("selected mean", _num(r["selected"].get("mean"))),
                ("not selected mean", _num(r["not_selected"].get("mean"))),
            ]
        )
        parts.append(f"<figure>{svg}</figure>{means}")
    if s.get("selector"):
        svg = plots.histogram(
            "score-own",
            {"selection": s["selector"]},
            "Selector's own score (selected records)",
            "score",
            density=False,
        )
        parts.append(f"<figure>{svg}</figure>")
    body = "".join(parts) or '<p class="note">no per-record scores available</p>'
    return _section("scores", "Scores", body)


def _odm(data: dict) -> str:
    if not data.get("odm"):
        return ""
    return _section("odm", "Online mixing", f"<figure>{plots.mixture_lines('odm', data['odm'])}</figure>")


def _ci(ci: list) -> str:
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _evals(data: dict) -> str:
    """Stored downstream evals (``curate eval``): proxy target loss beside random subsets, with CIs."""
    evals = data.get("evals") or []
    if not evals:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "proxy",
            "target texts",
            "selection loss (CI)",
            "random loss (CI)",
            "difference (CI)",
            "perplexity ratio",
            "vs random",
        )
    )
    rows = []
    for e in evals:
        sel, rnd, d = e["selection"], e["random"], e["delta"]
        verdict = (
            '<span class="good">better</span>' if e["better_than_random"] else '<span class="bad">not better</span>'
        )
        held = "" if e["target"].get("held_out") else " (not held out)"
        rows.append(
            f'<tr data-eval="{escape(e["params"]["proxy"])}"><td>{escape(e["params"]["proxy"])}</td>'
            f'<td class="num">{e["target_texts"]}{held}</td>'
            f'<td class="num sel">{_num(sel["loss"])} {_ci(sel["ci"])}</td>'
            f'<td class="num rnd">{_num(rnd["loss"])} {_ci(rnd["ci"])} ×{len(rnd["losses"])}</td>'
            f'<td class="num">{_num(d["loss"])} {_ci(d["ci"])}</td><td class="num">{_num(d["perplexity_ratio"])}</td>'
            f"<td>{verdict}</td></tr>"
        )
    level = round(100 * evals[0]["confidence"])
    note = (
        f'<p class="note">Loss in nats per token of a proxy LM trained on the selected records (weighted) and '
        f"on random subsets of the same size from the pool; {level}% bootstrap intervals over target texts "
        "and random seeds.</p>"
    )
    return _section(
        "eval", "Downstream eval (proxy LM on the target)", f"{note}<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def diff_section(d: dict) -> str:
    w = d["weight_drift"]
    rows = [
        ("A", f"<code>{escape(d['a']['id'])}</code> ({escape(d['a']['selector'])}, {d['a']['n']} records)"),
        ("B", f"<code>{escape(d['b']['id'])}</code> ({escape(d['b']['selector'])}, {d['b']['n']} records)"),
        ("Jaccard", _num(d["jaccard"])),
        ("shared", _num(d["shared"])),
        ("only in A", _num(d["only_a"])),
        ("only in B", _num(d["only_b"])),
        ("weight drift (shared)", escape(json.dumps(w, sort_keys=True))),
        ("domain TV distance", _num(d["domain_shift"]["tv_distance"])),
    ]
    ds = d["domain_shift"]
    svg = plots.grouped_bars(
        "diff-domains", ds["names"], {"a": ds["a"], "b": ds["b"]}, "Domain share: A vs B", "share"
    )
    return _section("diff", "Comparison with another manifest", f"{_kv(rows)}<figure>{svg}</figure>")


def render_report(data: dict, diff: dict | None = None) -> str:
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in data.get("notes", []))
    body = (
        _header(data["header"])
        + notes
        + _metrics(data)
        + _evals(data)
        + _histograms(data)
        + _map(data)
        + _weights(data)
        + _scores(data)
        + _odm(data)
        + (diff_section(diff) if diff else "")
    )
    payload = {**data, "diff": diff}
    return _page(f"curate report {data['header']['id'][:12]}", body, payload)


def render_diff(d: dict) -> str:
    return _page(f"curate diff {d['a']['id'][:12]} vs {d['b']['id'][:12]}", diff_section(d), {"diff": d})


def render_index(pools: list[dict], jobs: list[dict], manifests: list[dict]) -> str:
    """The service's front page: what exists, with links to each manifest's report."""

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{h}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{th}</tr>{body}</table>" if rows else '<p class="note">none yet</p>'

    pool_rows = [
        [escape(p["name"]), f"<code>{escape(p['id'])}</code>", _num(p["n_records"]), escape(str(p["created_at"]))]
        for p in pools
    ]
    job_rows = [
        [
            f"<code>{escape(j['id'][:12])}</code>",
            escape(j["kind"]),
            escape(j["status"]),
            _num(j["progress"]),
            escape(str(j["created_at"])),
        ]
        for j in jobs
    ]
    man_rows = [
        [
            f'<a href="/v1/manifests/{escape(m["id"])}/report"><code>{escape(m["id"][:16])}</code></a>',
            escape(m["selector"]),
            escape(m.get("pool_name") or m["pool_id"]),
            _num(m["selected"]),
            escape(str(m["created_at"])),
        ]
        for m in manifests
    ]
    body = (
        "<h1>curate</h1>"
        f'<section id="pools"><h2>Pools ({len(pools)})</h2>'
        f"{table(['name', 'id', 'records', 'created'], pool_rows)}</section>"
        f'<section id="jobs"><h2>Jobs (latest {len(jobs)})</h2>'
        f"{table(['id', 'kind', 'status', 'progress', 'created'], job_rows)}</section>"
        f'<section id="manifests"><h2>Manifests ({len(manifests)})</h2>'
        f"{table(['report', 'selector', 'pool', 'selected', 'created'], man_rows)}</section>"
        '<p class="note">API: <a href="/docs">/docs</a> · <a href="/openapi.json">/openapi.json</a></p>'
    )
    return _page("curate", body)
