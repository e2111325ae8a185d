"""The composition root: the only module of curate/ that imports api/ or pipelines/.

Exit codes: 0 success, 2 bad input (message names file, line and field), 1 internal error,
130 interrupted. ``--json`` prints machine-readable output (errors too) on stdout.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path

import click

from curate.config import Settings, get_settings
from curate.errors import CurateError, InputError


def _emit(ctx_json: bool, payload: dict, human: str) -> None:
    if ctx_json:
        click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
    else:
        click.echo(human)


def _warn(payload: dict) -> None:
    """A result's ``warnings`` on stderr (they are in the JSON too), so a mistake is never silent."""
    for warning in payload.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)


def validated(model, values: dict):
    """A pydantic model from CLI options; a bad value is exit 2 naming its option, not an internal error."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "--" + str(first["loc"][0]).replace("_", "-") if first.get("loc") else None
        raise InputError(first["msg"].removeprefix("Value error, "), field=name) from None


def command(group: click.Group, name: str | None = None, **kw):
    """A subcommand with the shared --json/--home options and the exit-code contract."""

    def wrap(fn):
        @group.command(name, **kw)
        @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
        @click.option("--home", type=click.Path(path_type=Path), default=None, help="CURATE_HOME (default ./.curate).")
        @functools.wraps(fn)
        def run(as_json: bool, home: Path | None, **kwargs):
            try:
                settings = get_settings(home)
                return fn(settings=settings, as_json=as_json, **kwargs)
            except CurateError as exc:
                if as_json:
                    click.echo(json.dumps({"error": exc.to_dict()}, default=str))
                click.echo(f"error: {exc}", err=True)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:
                click.echo("interrupted: nothing was left half-written", err=True)
                sys.exit(130)
            except Exception as exc:  # noqa: BLE001 — the contract says exit 1, one line, no traceback
                if os.environ.get("CURATE_DEBUG"):
                    traceback.print_exc()
                if as_json:
                    click.echo(json.dumps({"error": {"code": "internal_error", "message": str(exc)}}))
                msg = f"internal error: {type(exc).__name__}: {exc} (set CURATE_DEBUG=1 for a traceback)"
                click.echo(msg, err=True)
                sys.exit(1)

        return run

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="curate")
def main() -> None:
    """curate: pick weighted training subsets from large candidate pools."""


def _progress(settings: Settings):
    """Stage progress with rate and ETA on stderr: redrawn on a terminal, a line every few seconds otherwise."""
    from curate.progress import ProgressReporter

    return ProgressReporter(interval=settings.progress_seconds)


def _ingest_summary(report: dict) -> str:
    pool, read, dup = report["pool"], report["read"], report["duplicates"]
    lines = [
        f"pool {pool['name']} ({pool['id']}): {pool['n_records']} records, fingerprint {pool['fingerprint'][:16]}…",
        f"  read {read['records']} records from {read['file']} at {read['records_per_s']} rec/s",
        f"  duplicate texts: {dup['duplicate_text_records']} records"
        f" (dropped {dup['dropped_duplicate_texts']}); duplicate ids dropped: {dup['dropped_duplicate_ids']}",
    ]
    for name, st in report.get("stages", {}).items():
        state = "cached" if st.get("cached") else f"{st.get('records_per_s')} rec/s"
        lines.append(f"  {name}: {state}")
    return "\n".join(lines)


@command(main, "ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--pool", "pool", required=True, help="Pool name.")
@click.option("--text-field", default="text", show_default=True)
@click.option("--id-field", default=None, help="Default: 'id' if present, else ids from the text hash.")
@click.option("--domain-field", default=None, help="Default: 'domain' if present.")
@click.option("--embed/--no-embed", default=True, show_default=True)
@click.option("--model", default=None, help="sentence-transformers model name or local path.")
@click.option("--embedding-field", default=None, help="Use this list-of-float field as embeddings.")
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "onnx-int8", "static"]),
    default=None,
    help="Embedding backend (default torch); static is >100x faster and coarser: see docs/embeddings.md.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Default auto.")
@click.option("--static-fit", type=int, default=None, help="static: fit to the network on N pool texts (e.g. 8192).")
@click.option("--clusters", type=int, default=None, help="k-means clusters (default sqrt(n); 0 = none).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--drop-duplicates", is_flag=True, help="Drop later records whose text repeats exactly.")
@click.option("--on-duplicate-id", type=click.Choice(["error", "keep-first"]), default="error", show_default=True)
@click.option("--replace", is_flag=True, help="Replace an existing pool of the same name.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of JSONL/CSV (e.g. latin-1).")
@click.option(
    "--max-expanded-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse input whose decompressed size passes this (default: no limit for a local file).",
)
@click.option(
    "--max-record-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse a line/record longer than this, before buffering it (default: no limit).",
)
def ingest_cmd(settings: Settings, as_json: bool, path: Path, pool: str, **opts) -> None:
    """Read PATH (JSONL[.gz|.zst], Parquet, CSV) into a pool and compute its features."""
    from curate.ingest import IngestParams, ingest

    if opts["model"] is None:
        opts.pop("model")
    embedding = {k: v for k in ("backend", "device", "static_fit") if (v := opts.pop(k)) is not None}
    params = validated(IngestParams, {**opts, "embedding": embedding})
    with _progress(settings) as progress:
        report = ingest(settings, path, pool, params, progress=progress)
    _warn(report)
    _emit(as_json, report, _ingest_summary(report))


def parse_param_pairs(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, booleans, lists)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--param expects key=value, got '{pair}'", field="param")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _manifest_summary(doc: dict) -> str:
    from curate.quality import format_headline

    metrics = format_headline(doc["metrics"])  # each with its random baseline and which way is better
    note = f"\n  {doc['budget_note']}" if doc.get("budget_note") else ""
    return (
        f"manifest {doc['id']}\n  selector {doc['selector']['name']}: selected {doc['budget']['selected']}"
        f" of {doc['pool']['n_records']} (requested {doc['budget']['requested']}), seed {doc['seed']}{note}\n"
        f"  metrics: {metrics}\n  path: {doc['path']}"
    )


@command(main, "select")
@click.option("--pool", required=True)
@click.option("--selector", required=True)
@click.option(
    "--budget",
    required=True,
    help="Record count (100), fraction (0.1), or auto (selectors that size themselves).",
)
@click.option("--target", default=None, help="A file of target texts or a pool name.")
@click.option("--param", "params", multiple=True, help="Selector parameter key=value (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also copy the manifest folder here.")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where per-record scoring runs (same manifest either way).",
)
def select_cmd(settings: Settings, as_json: bool, pool, selector, budget, target, params, seed, out, executor) -> None:
    """Select a weighted subset of a pool and write a manifest."""
    from curate.executors import use_executor
    from curate.progress import selection_progress
    from curate.select import run_selection

    with _progress(settings) as progress, use_executor(executor):
        doc = run_selection(
            settings,
            pool=pool,
            selector=selector,
            budget=budget,
            params=parse_param_pairs(params),
            seed=seed,
            target=target,
            out=out,
            progress=selection_progress(progress, f"select {selector}"),
        )
    _warn(doc)
    _emit(as_json, doc, _manifest_summary(doc))


@command(main, "dedup")
@click.option("--pool", required=True)
@click.option(
    "--method",
    type=click.Choice(["semantic", "minhash", "exact"]),
    default="semantic",
    show_default=True,
    help="semantic: SemDeDup on embeddings; minhash: fuzzy, shingle Jaccard with LSH; exact: normalised text.",
)
@click.option("--eps", type=float, default=None, help="semantic: duplicate when cosine > 1 - eps [0.05].")
@click.option("--keep", type=click.Choice(["centroid", "outlier", "first"]), default=None, help="semantic [centroid].")
@click.option("--criterion", type=click.Choice(["kept", "any_earlier"]), default=None, help="semantic [kept].")
@click.option("--param", "params", multiple=True, help="Method parameter key=value, e.g. threshold=0.8 (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also copy the manifest folder here.")
def dedup_cmd(settings: Settings, as_json: bool, pool, method, eps, keep, criterion, params, out) -> None:
    """Deduplicate a pool (semantic, minhash or exact); writes a manifest of the kept records and
    removed.parquet with each removed id and the id it duplicated."""
    from curate.dedup import METHODS, run_dedup

    values = parse_param_pairs(params)
    semantic = {k: v for k, v in {"eps": eps, "keep": keep, "criterion": criterion}.items() if v is not None}
    if semantic and method != "semantic":
        raise InputError(f"--{next(iter(semantic))} applies to --method semantic only", field=next(iter(semantic)))
    model = next(cls for cls, (name, *_) in METHODS.items() if name == method)
    doc = run_dedup(settings, pool=pool, params=validated(model, {**values, **semantic}), out=out)
    _emit(as_json, doc, _manifest_summary(doc))


@command(main, "selectors")
def selectors_cmd(settings: Settings, as_json: bool) -> None:
    """List selectors with their parameters and defaults."""
    from curate.selectors.base import REGISTRY, describe, get_selector

    get_selector("random")  # fills the registry
    infos = [describe(REGISTRY[name]) for name in sorted(REGISTRY)]
    lines = []
    for info in infos:
        lines.append(f"{info['name']} (v{info['version']}): {info['description']}")
        props = info["params_schema"].get("properties", {})
        for key, default in info["defaults"].items():
            lines.append(f"    {key} = {json.dumps(default)}  {props.get(key, {}).get('description', '')}".rstrip())
    _emit(as_json, {"selectors": infos}, "\n".join(lines))


@command(main, "pools")
def pools_cmd(settings: Settings, as_json: bool) -> None:
    """List pools: name, id, records, features, fields and when each was made."""
    from curate.catalog import list_pools
    from curate.pool import Pool

    pools = [Pool.load(settings, row.id).describe(row) for row in list_pools(settings)]
    rows = [("name", "id", "records", "features", "domain", "created")]
    for p in pools:
        domain = p["fields"].get("domain") or "-"
        created = (p["created_at"] or "")[:19].replace("T", " ")
        rows.append((p["name"], p["id"], str(p["n_records"]), ",".join(p["features"]) or "-", domain, created))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    human = "\n".join(table) if pools else "no pools yet: curate ingest FILE --pool NAME"
    _emit(as_json, {"pools": pools, "count": len(pools)}, human)


@main.group("manifest")
def manifest_group() -> None:
    """Show, verify, export, report on and compare manifests."""


@command(manifest_group, "list")
@click.option("--pool", default=None, help="Only this pool's manifests (name or id).")
@click.option("--selector", default=None, help="Only this selector's manifests.")
def manifest_list(settings: Settings, as_json: bool, pool: str | None, selector: str | None) -> None:
    """List the catalogued manifests, oldest first: id, pool, selector, size, path."""
    from curate.manifest import list_manifests

    rows = list_manifests(settings, pool=pool, selector=selector)
    table = [("id", "pool", "selector", "selected", "created", "path")] + [
        (r["id"][:12], r["pool"], r["selector"], f"{r['selected']}/{r['n_records']}", r["created_at"], r["path"])
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    human = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)
    _emit(as_json, {"manifests": rows, "count": len(rows)}, human if rows else "no manifests yet")


@command(manifest_group, "show")
@click.argument("id_or_dir")
def manifest_show(settings: Settings, as_json: bool, id_or_dir: str) -> None:
    """Print a manifest's header."""
    from curate.manifest import locate, read_manifest

    doc = read_manifest(locate(settings, id_or_dir))
    _emit(as_json, doc, json.dumps(doc, indent=2, sort_keys=True))


@command(manifest_group, "verify")
@click.argument("id_or_dir")
def manifest_verify(settings: Settings, as_json: bool, id_or_dir: str) -> None:
    """Recompute every checksum, the id and the subset invariants."""
    from curate.manifest import ManifestError, locate, verify

    path = locate(settings, id_or_dir)
    problems = verify(path)
    if problems:
        raise ManifestError(f"manifest failed verification: {'; '.join(problems)}", file=str(path))
    _emit(as_json, {"ok": True, "path": str(path)}, f"ok: {path}")


@command(manifest_group, "export")
@click.argument("id_or_dir")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "csv"]), required=True)
@click.option("--with-text", is_flag=True, help="Join each row with its record's text.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default ./<id12>.subset.<format>")
def manifest_export(settings: Settings, as_json: bool, id_or_dir: str, fmt: str, with_text: bool, out) -> None:
    """Write the subset as Parquet, JSONL or CSV."""
    from curate.manifest import export, locate

    path = locate(settings, id_or_dir)
    out = out or Path(f"{path.name[:12]}.subset.{fmt}")
    written = export(settings, path, fmt, out, with_text=with_text)
    _emit(as_json, {"path": str(written)}, str(written))


@command(manifest_group, "report")
@click.argument("id_or_dir")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default ./<id12>.report.html")
@click.option("--target", default=None, help="The target file or pool, when the manifest's cannot be found again.")
@click.option("--diff", "against", default=None, help="Add a comparison with this manifest (id or folder).")
def manifest_report(settings: Settings, as_json: bool, id_or_dir: str, out, target, against) -> None:
    """Write a self-contained HTML report: histograms, embedding map, weights, scores, metrics vs random."""
    from curate.manifest import locate
    from curate.report import write_report

    path = locate(settings, id_or_dir)
    other = locate(settings, against) if against else None
    out = out or Path(f"{path.name[:12]}.report.html")
    data = write_report(settings, path, out, target=target, against=other)
    lines = [str(out)] + [
        f"  {m['name']}: {m['selection']} (random {m['random']} ± {m['random_std']}, {m['better']} is better)"
        for m in data["metrics"]
        if "selection" in m
    ]
    _emit(as_json, {"path": str(out), "metrics": data["metrics"], "notes": data["notes"]}, "\n".join(lines))


@command(manifest_group, "diff")
@click.argument("a")
@click.argument("b")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the comparison as HTML.")
def manifest_diff(settings: Settings, as_json: bool, a: str, b: str, out) -> None:
    """Compare two manifests: Jaccard overlap, records only in each, weight drift, domain shift."""
    from curate.io import atomic_path
    from curate.manifest import locate
    from curate.report import diff, render_diff

    result = diff(locate(settings, a), locate(settings, b))
    if out is not None:
        with atomic_path(out) as tmp:
            Path(tmp).write_text(render_diff(result), encoding="utf-8")
    w = result["weight_drift"]
    human = (
        f"A {result['a']['id'][:12]} ({result['a']['n']}) vs B {result['b']['id'][:12]} ({result['b']['n']}): "
        f"Jaccard {result['jaccard']}, shared {result['shared']},"
        f" only A {result['only_a']}, only B {result['only_b']}\n"
        f"  weight drift on shared: {json.dumps(w, sort_keys=True)}\n"
        f"  domain TV distance: {result['domain_shift']['tv_distance']}"
    )
    _emit(as_json, result, human)


def _eval_summary(result: dict) -> str:
    sel, rnd, delta = result["selection"], result["random"], result["delta"]
    level = f"{round(100 * result['confidence'])}% CI"
    verdict = "better than random" if result["better_than_random"] else "not distinguishable from random (or worse)"
    lines = [
        f"eval of manifest {result['manifest']['id'][:12]} ({result['manifest']['selector']}, "
        f"{result['train']['records']} records) with the {result['params']['proxy']} proxy on "
        f"{result['target_texts']} target texts{'' if result['target']['held_out'] else ' (not held out)'}",
        f"  selection: loss {sel['loss']} (perplexity {sel['perplexity']}), {level} {sel['ci']}",
        f"  random x{len(rnd['losses'])}: loss {rnd['loss']} (perplexity {rnd['perplexity']}), {level} {rnd['ci']}",
        f"  difference: {delta['loss']} nats/token, {level} {delta['ci']}, perplexity ratio "
        f"{delta['perplexity_ratio']}: {verdict}",
    ]
    if result.get("note"):
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines)


@command(main, "eval")
@click.argument("manifest")
@click.option("--target", default=None, help="Target texts (file or pool) to score; default: the manifest's own.")
@click.option("--proxy", type=click.Choice(["ngram", "transformer"]), default=None, help="Default ngram.")
@click.option("--random-seeds", type=int, default=None, help="Random subsets of the same size (default 3, ≥ 3).")
@click.option("--param", "params", multiple=True, help="Any other EvalParams field key=value (repeatable).")
def eval_cmd(settings: Settings, as_json: bool, manifest: str, target, proxy, random_seeds, params) -> None:
    """Train a proxy LM on MANIFEST's records (weighted) and on random subsets of its size; compare target loss."""
    from curate.eval import EvalParams, evaluate
    from curate.manifest import locate

    values = parse_param_pairs(params)
    values |= {k: v for k, v in (("proxy", proxy), ("random_seeds", random_seeds)) if v is not None}
    unknown = sorted(set(values) - set(EvalParams.model_fields))
    if unknown:
        raise InputError(
            f"unknown eval parameter '{unknown[0]}'; known: {', '.join(EvalParams.model_fields)}", field="param"
        )
    folder = locate(settings, manifest)
    with _progress(settings) as progress:
        result = evaluate(
            settings, folder, target=target, params=validated(EvalParams, values), progress=progress.fraction("eval")
        )
    _emit(as_json, result, _eval_summary(result))


@command(main, "run")
@click.argument("pipeline", type=click.Path(path_type=Path))
def run_cmd(settings: Settings, as_json: bool, pipeline: Path) -> None:
    """Run a batch pipeline file: one ingest, then its selections."""
    from pipelines.runner import format_steps, format_summary, run_pipeline

    try:
        with _progress(settings) as progress:
            result = run_pipeline(pipeline, settings, progress=progress)
    except BaseException as exc:
        if getattr(exc, "completed", None):  # what did run before the failure, so the next run's skips make sense
            click.echo("steps completed before the failure:\n" + format_steps(exc.completed), err=True)
        raise
    _emit(as_json, result, format_summary(result))


@command(main, "serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes started beside the API (default CURATE_WORKERS=1; 0 when `curate worker` runs apart).",
)
def serve_cmd(settings: Settings, as_json: bool, host: str, port: int, workers: int | None) -> None:
    """Serve the REST API (and, unless --workers 0, the workers that run its jobs)."""
    import uvicorn

    from api.app import create_app, is_loopback
    from api.observability import configure_logging
    from curate.worker import Supervisor

    if not settings.api_tokens and not is_loopback(host):
        raise InputError(
            f"refusing to bind {host} without CURATE_API_TOKENS; set tokens or use 127.0.0.1", field="host"
        )
    n = settings.workers if workers is None else workers
    if n < 0:
        raise InputError("--workers must be ≥ 0", field="workers")
    configure_logging()
    app = create_app(settings)
    supervisor = Supervisor(settings, n).start() if n else None
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        if supervisor is not None:
            supervisor.shutdown()


@command(main, "worker")
@click.option("--processes", "-p", type=int, default=1, show_default=True, help="Worker processes to run.")
def worker_cmd(settings: Settings, as_json: bool, processes: int) -> None:
    """Run job workers on their own (docker-compose `worker` service); stop with SIGTERM or Ctrl-C."""
    import threading

    from api.observability import configure_logging
    from curate.worker import Supervisor, install_stop_handlers, run_worker

    if processes < 1:
        raise InputError("--processes must be ≥ 1", field="processes")
    configure_logging()
    stop = threading.Event()
    install_stop_handlers(stop)
    if processes == 1:
        ran = run_worker(settings, stop=stop)
        _emit(as_json, {"jobs": ran}, f"worker stopped after {ran} jobs")
        return
    supervisor = Supervisor(settings, processes).start()
    try:
        stop.wait()
    finally:
        supervisor.shutdown()


if __name__ == "__main__":
    main()
