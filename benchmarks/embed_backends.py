"""Speed and quality of every embedding backend beside torch, in one run, as one JSON object.

Speed: texts/s of torch, onnx, onnx-int8 and static on the same 1,000 Debian package descriptions,
round-robin for ``--rounds`` rounds; ratios to torch are per round, then the median. Static is also
timed on 200k recombined descriptions, where its per-call overhead no longer counts.

Quality, on real labelled text (tests/realtext.py, Debian descriptions by Section):
- agreement with torch: Spearman of the pairwise cosines of 500 texts; mean cosine to torch's vector
  (only meaningful for the same network); overlap of each text's 10 nearest neighbours;
- k-NN label accuracy (k = 10, 12 sections × 100) under each backend, torch's beside it;
- downstream: each backend's pool (the 1,200 texts) is ingested and selected from, and the selection
  is judged in torch's space so only the selection differs — tarot (10 %, target 150 held-out
  `python` texts): exact OT distance to the target and the share of target-section records;
  coverage (el2n_probe, 30 %): accuracy of a logistic-regression probe trained on the selected
  records (torch features), tested on 600 held-out texts. Random subsets (5 seeds) beside both.

    nice -n 10 python benchmarks/embed_backends.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BACKENDS = ["torch", "onnx", "onnx-int8", "static", "static-fit"]
FIT: dict = {}  # "static-fit": the static model fitted on 8,192 other Debian descriptions (set in main)
TARGET_DOMAIN = "python"


def params(backend: str):
    from curate.stages.embed import EmbedParams

    return EmbedParams(**FIT) if backend == "static-fit" else EmbedParams(backend=backend)


def fit_on(texts: list[str], work: Path) -> dict:
    """Ingest a pool of ``texts`` with static_fit; the fitted model's parameters (what targets use)."""
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest

    path = work / "fit.jsonl"
    pl.DataFrame({"text": texts}).write_ndjson(path)
    t0 = time.perf_counter()
    fit = IngestParams(embedding={"backend": "static", "static_fit": len(texts)}, clusters=0)
    report = ingest(Settings(home=work / "fit-home"), path, "fit", fit)
    return {**report["stages"]["embed"]["embed_params"], "_seconds": round(time.perf_counter() - t0, 1)}


def speed(texts: list[str], rounds: int) -> dict:
    from curate.embedders import get_embedder

    for b in BACKENDS:  # load (and on first use export or distil) outside the timing
        get_embedder(params(b)).encode(texts[:8])
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for r in range(rounds):
        for b in BACKENDS[r % len(BACKENDS) :] + BACKENDS[: r % len(BACKENDS)]:  # rotate who goes first
            t0 = time.perf_counter()
            get_embedder(params(b)).encode(texts)
            times[b].append(time.perf_counter() - t0)
    out = {}
    for b in BACKENDS:
        ratios = [times["torch"][i] / times[b][i] for i in range(rounds)]
        out[b] = {
            "texts_per_s": round(len(texts) / float(np.median(times[b])), 1),
            "speedup_vs_torch": round(float(np.median(ratios)), 2),
            "speedup_per_round": [round(x, 2) for x in ratios],
        }
    return out


def static_throughput(texts: list[str], n: int) -> dict:
    from curate.embedders import get_embedder

    rng = np.random.default_rng(0)
    big = [" ".join(texts[j] for j in rng.integers(0, len(texts), 2)) for _ in range(n)]
    emb = get_embedder(params("static"))
    t0 = time.perf_counter()
    for start in range(0, n, emb.unit_rows):
        emb.encode(big[start : start + emb.unit_rows])
    seconds = time.perf_counter() - t0
    chars = round(float(np.mean([len(t) for t in big])))
    return {"texts": n, "texts_per_s": round(n / seconds, 1), "mean_chars": chars}


def knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def agreement(vectors: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    ref = vectors["torch"]
    sub = np.random.default_rng(0).choice(len(ref), 500, replace=False)
    iu = np.triu_indices(500, 1)
    ref_pairs = (ref[sub] @ ref[sub].T)[iu]
    ref_nn = knn(ref)
    out = {}
    for b, x in vectors.items():
        nn = knn(x)
        overlap = np.mean([len(np.intersect1d(a, c)) for a, c in zip(nn, ref_nn, strict=True)]) / nn.shape[1]
        row = {
            "spearman_pairwise_cosine": round(float(spearmanr(ref_pairs, (x[sub] @ x[sub].T)[iu]).statistic), 4),
            "knn10_label_accuracy": round(float((labels[nn] == labels[:, None]).mean()), 4),
            "knn10_overlap_with_torch": round(float(overlap), 4),
        }
        if not b.startswith("static"):  # another vector space: a cosine to torch's vector means nothing
            row["mean_cosine_to_torch"] = round(float((x * ref).sum(1).mean()), 4)
        out[b] = row
    return out


def ot_distance(a: np.ndarray, b: np.ndarray) -> float:
    import ot

    cost = np.maximum(1.0 - a @ b.T, 0.0).astype(np.float64)
    return float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost))


def probe_accuracy(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


def downstream(pool: pl.DataFrame, target: pl.DataFrame, test: pl.DataFrame, work: Path) -> tuple[dict, dict]:
    """Selections per backend judged in torch's space; also returns each pool's vectors."""
    from curate.config import Settings
    from curate.ingest import IngestParams, ingest
    from curate.pool import Pool
    from curate.select import run_selection
    from curate.stages.embed import encode

    pool_file, target_file = work / "pool.jsonl", work / "target.jsonl"
    pool.write_ndjson(pool_file)
    target.select("text").write_ndjson(target_file)
    ref_target = encode(target["text"].to_list(), params("torch"))
    ref_test = encode(test["text"].to_list(), params("torch"))
    labels, test_labels = pool["domain"].to_numpy(), test["domain"].to_numpy()
    row_of = {rid: i for i, rid in enumerate(pool["id"].to_list())}
    k_tarot, k_cov = len(pool) // 10, int(len(pool) * 0.3)
    vectors: dict[str, np.ndarray] = {}
    chosen: dict[str, dict[str, np.ndarray]] = {}
    for b in BACKENDS:  # torch first: its pool's vectors are the yardstick space
        s = Settings(home=work / f"home-{b}")
        ingest(s, pool_file, "p", IngestParams(embedding=params(b).model_dump(), clusters=0))
        vectors[b] = np.asarray(Pool.load(s, "p").embeddings()).copy()
        chosen[b] = {}
        for name, k, extra in (
            ("tarot", k_tarot, {"target": str(target_file)}),
            ("coverage", k_cov, {"params": {"score": "el2n_probe"}}),
        ):
            doc = run_selection(s, pool="p", selector=name, budget=k, seed=0, **extra)
            ids = pl.read_parquet(Path(doc["path"]) / "subset.parquet")["id"].to_list()
            chosen[b][name] = np.array([row_of[i] for i in ids])
    ref = vectors["torch"]
    rng = np.random.default_rng(0)
    randoms = [rng.permutation(len(pool)) for _ in range(5)]
    chosen["random"] = {"tarot": randoms, "coverage": randoms}

    def judged(t: np.ndarray, c: np.ndarray) -> dict:
        t, c = t[:k_tarot], c[:k_cov]
        return {
            "tarot_ot_distance": ot_distance(ref[t], ref_target),
            "tarot_target_share": float((labels[t] == TARGET_DOMAIN).mean()),
            "coverage_probe_accuracy": probe_accuracy(ref[c], labels[c], ref_test, test_labels),
        }

    out = {}
    for b, picks in chosen.items():
        rows = [judged(r, r) for r in randoms] if b == "random" else [judged(picks["tarot"], picks["coverage"])]
        out[b] = {key: round(float(np.mean([r[key] for r in rows])), 4) for key in rows[0]}
    return out, vectors


def main() -> None:
    from tests.realtext import corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speed-texts", type=int, default=1000)
    ap.add_argument("--static-texts", type=int, default=200_000)
    ap.add_argument("--per-domain", type=int, default=100, help="labelled pool: 12 sections × this")
    ap.add_argument("--fit-texts", type=int, default=8192, help="static-fit: texts the static model is fitted on")
    args = ap.parse_args()
    load_before = os.getloadavg()
    per, held = args.per_domain, args.per_domain // 2
    full = corpus("debian", n_domains=12, per_domain=per + held + 150, seed=1)
    labelled = full.filter(pl.int_range(pl.len()).over("domain") < per)
    rest = full.filter(pl.int_range(pl.len()).over("domain") >= per)
    test = rest.filter(pl.int_range(pl.len()).over("domain") < held)
    target = rest.filter((pl.col("domain") == TARGET_DOMAIN) & (pl.int_range(pl.len()).over("domain") >= held))
    texts = labelled["text"].to_list()
    result: dict = {
        "benchmark": "embed_backends",
        "corpus": {"labelled": len(labelled), "held_out_test": len(test), "target": len(target), "domains": 12},
    }
    others = corpus("debian", n_domains=40).filter(~pl.col("text").is_in(full["text"].implode()))
    with tempfile.TemporaryDirectory(prefix="curate-fit-") as tmp:
        FIT.update(fit_on(others.sample(args.fit_texts, seed=0)["text"].to_list(), Path(tmp)))
    result["static_fit"] = {"texts": args.fit_texts, "seconds": FIT.pop("_seconds"), "model": FIT["model"]}
    result["speed"] = speed(texts[: args.speed_texts], args.rounds)
    result["speed"]["static_large"] = static_throughput(full["text"].to_list(), args.static_texts)
    with tempfile.TemporaryDirectory(prefix="curate-backends-") as tmp:
        result["downstream"], vectors = downstream(labelled, target, test, Path(tmp))
    result["agreement"] = agreement(vectors, labelled["domain"].to_numpy())
    result["machine"] = {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
