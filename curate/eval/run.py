"""Train the proxy LM on a manifest's records (with their weights) and on random subsets of the same
size from its pool, score each on the target's texts, and compare with confidence intervals.

A selection that moves the training data toward the target should lower the target loss below what
random subsets of the same size reach; that is the claim every feature metric (KL reduction, OT)
stands in for, checked here with a trained model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from curate.config import Settings
from curate.errors import InputError
from curate.eval import store
from curate.eval.ngram import NgramLM
from curate.eval.params import EvalParams
from curate.eval.stats import compare
from curate.eval.tokenize import Vocab, take
from curate.manifest import read_manifest
from curate.pool import Pool, manifest_pool, subset_rows
from curate.target import Target, resolve_target

Progress = Callable[[float, str], None]
_SEED_TAG = 0xE7A1  # random subsets of the eval never share a stream with a selector's of the same seed


def make_proxy(params: EvalParams, vocab: Vocab):
    if params.proxy == "transformer":
        from curate.eval.torch_lm import TinyLM

        return TinyLM(vocab, params)
    return NgramLM(vocab, params.order)


def pool_texts(pool: Pool, rows: np.ndarray) -> list[str]:
    """The texts of pool rows ``rows``, in that order."""
    order = pl.DataFrame({"row_id": np.asarray(rows, np.int64), "_i": np.arange(len(rows))})
    joined = pool.scan().select("row_id", "text").join(order.lazy(), on="row_id").sort("_i").collect()
    return joined["text"].to_list()


def target_sample(target: Target, params: EvalParams) -> list[str]:
    texts = [t for batch in target.iter_texts() for t in batch.to_list() if t and t.strip()]
    if not texts:
        raise InputError("the target has no texts to score", field="target")
    if len(texts) > params.max_target_texts:
        rng = np.random.default_rng(np.random.SeedSequence([_SEED_TAG, params.seed, 1]))
        keep = np.sort(rng.choice(len(texts), params.max_target_texts, replace=False))
        texts = [texts[i] for i in keep]
    return texts


def evaluate_rows(
    pool: Pool,
    rows: np.ndarray,
    weights: np.ndarray | None,
    target_texts: list[str],
    params: EvalParams,
    progress: Progress | None = None,
) -> dict:
    """The comparison for pool rows ``rows`` (with ``weights``) on ``target_texts``; no manifest needed."""
    progress = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    rows = np.asarray(rows, np.int64)
    weights = np.ones(len(rows)) if weights is None or not params.weighted else np.asarray(weights, np.float64)
    clean = np.ones(pool.n_records, bool)
    if params.decontaminate:
        clean = (
            ~pool.scan()
            .select(pl.col("text").is_in(pl.Series(target_texts).unique().implode()))
            .collect()
            .to_series()
            .to_numpy()
        )
    keep = clean[rows]
    rows, weights = rows[keep], weights[keep]
    if len(rows) == 0:
        raise InputError("no selected record is left to train on (all are target texts)", field="manifest")
    candidates = np.flatnonzero(clean)
    if len(candidates) < len(rows):
        raise InputError("the pool has fewer clean records than the selection", field="manifest")
    sets = [(rows, weights)]
    for s in range(params.random_seeds):
        rng = np.random.default_rng(np.random.SeedSequence([_SEED_TAG, params.seed, 100 + s]))
        sets.append((np.sort(rng.choice(candidates, len(rows), replace=False)), None))
    union, where = np.unique(np.concatenate([r for r, _ in sets]), return_inverse=True)
    progress(0.05, f"tokenising {len(union)} training and {len(target_texts)} target texts")
    vocab = Vocab(params.max_tokens)
    ids, offsets = vocab.encode(pool_texts(pool, union))
    t_ids, t_offsets = vocab.encode(target_texts)
    if params.proxy == "transformer":
        vocab, (ids, t_ids) = vocab.compact(ids, t_ids)
    nll, tokens, trained = [], None, []
    cursor = 0
    for i, (set_rows, set_weights) in enumerate(sets):
        label = "selection" if i == 0 else f"random seed {i - 1}"
        progress(0.1 + 0.85 * i / len(sets), f"training the {params.proxy} proxy on the {label}")
        pick = where[cursor : cursor + len(set_rows)]
        cursor += len(set_rows)
        model = make_proxy(params, vocab).fit(*take(ids, offsets, pick), set_weights)
        per_text, tokens = model.score(t_ids, t_offsets)
        nll.append(per_text)
        trained.append(model.trained_tokens)
    out = compare(
        np.stack(nll, axis=1), tokens, confidence=params.confidence, replicates=params.bootstrap, seed=params.seed
    )
    out["train"] = {
        "records": int(len(rows)),
        "removed_as_target_texts": int((~keep).sum()),
        "tokens_selection": round(trained[0], 3),
        "tokens_random": round(float(np.mean(trained[1:])), 3),
    }
    out["target_texts"] = len(target_texts)
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def manifest_rows(pool: Pool, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pool row ids, weights) of a manifest's subset, in rank order."""
    joined = subset_rows(pool, pl.read_parquet(folder / "subset.parquet", columns=["id", "weight", "rank"]))
    return joined["row_id"].to_numpy().astype(np.int64), joined["weight"].to_numpy()


def eval_target(settings: Settings, doc: dict, spec: str | None, check_path=None) -> Target:
    """``spec`` (any texts file or pool: a held-out sample of the target domain is the honest choice),
    else the target the manifest was selected against (its copy in the folder, or its pool)."""
    if spec:
        return resolve_target(settings, spec, check_path=check_path)
    if doc.get("target") is None:
        raise InputError(
            f"manifest {doc['id'][:12]} has no target: pass --target (texts of the target domain)", field="target"
        )
    from curate.report.data import report_target

    target, note = report_target(settings, doc, None)
    if target is None:
        raise InputError(note or "the manifest's target was not found; pass --target", field="target")
    return target


def evaluate(
    settings: Settings,
    folder: Path,
    *,
    target: str | None = None,
    params: EvalParams | None = None,
    progress: Progress | None = None,
    check_path=None,
) -> dict:
    """The eval of the manifest in ``folder``, computed once per (params, target) and stored beside it."""
    params = params or EvalParams()
    doc = read_manifest(folder)
    pool = manifest_pool(settings, doc)
    the_target = eval_target(settings, doc, target, check_path)
    dumped = params.model_dump(mode="json")
    path = store.eval_file(settings, doc["id"], store.eval_key(dumped, the_target.fingerprint))
    if (saved := store.load(path)) is not None:
        return saved
    rows, weights = manifest_rows(pool, folder)
    if len(rows) == 0:
        raise InputError("the manifest selected no records", field="manifest")
    result = evaluate_rows(pool, rows, weights, target_sample(the_target, params), params, progress)
    selected_against = (doc.get("target") or {}).get("fingerprint")
    result = {
        "eval_version": store.EVAL_VERSION,
        "manifest": {
            "id": doc["id"],
            "selector": doc["selector"]["name"],
            "selected": doc["budget"]["selected"],
            "pool": doc["pool"]["id"],
        },
        "target": {**the_target.ref(), "held_out": the_target.fingerprint != selected_against},
        "params": dumped,
        **result,
    }
    if not result["target"]["held_out"]:
        result["note"] = (
            "scored on the texts the selection aimed at; pass a held-out sample of the target "
            "domain as --target for an unbiased number"
        )
    store.save(path, result)
    return result
