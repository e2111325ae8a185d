"""Embedding backends (torch, onnx, onnx-int8, static), each against the real MiniLM, and the
embedding cache's resumability after an interrupted run. Speed lives in benchmarks/embed_backends.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.config import Settings
from curate.embedders import get_embedder
from curate.embedders.static import StaticEmbedder
from curate.embedders.transformer import TorchEmbedder
from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.records import text_hashes
from curate.stages.embed import EmbeddingCache, EmbedParams, encode

from .conftest import run_cli, write_jsonl
from .realtext import corpus


@pytest.fixture(scope="module")
def debian():
    """240 real package descriptions, 12 Debian sections × 20."""
    return corpus("debian", n_domains=12, per_domain=20, seed=3)


@pytest.fixture(scope="module")
def torch_vectors(debian) -> np.ndarray:
    return encode(debian["text"].to_list(), EmbedParams())


def knn_label_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def test_onnx_fp32_reproduces_torch_and_int8_stays_close(debian, torch_vectors) -> None:
    texts = debian["text"].to_list()[:96]
    fp32 = encode(texts, EmbedParams(backend="onnx"))
    int8 = encode(texts, EmbedParams(backend="onnx-int8"))
    ref = torch_vectors[:96]
    assert fp32.shape == ref.shape and fp32.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (fp32 * ref).sum(1).min() > 0.9999  # the same network, another runtime
    cos8 = (int8 * ref).sum(1)
    assert cos8.mean() > 0.98 and cos8.min() > 0.95  # quantised, not another model
    assert not np.allclose(int8, ref, atol=1e-4)  # ... and really the int8 graph
    # Different numbers, so different cache spaces, while the fp32 space is not the torch one either.
    ids = {get_embedder(EmbedParams(backend=b)).cache_id for b in ("torch", "onnx", "onnx-int8")}
    assert len(ids) == 3


def test_static_is_the_normalised_sum_of_its_token_vectors(debian) -> None:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    emb = get_embedder(EmbedParams(backend="static"))
    assert isinstance(emb, StaticEmbedder)
    table = load_file(str(emb.path / "model.safetensors"))["embeddings"]
    tok = Tokenizer.from_file(str(emb.path / "tokenizer.json"))
    tok.no_padding()
    texts = [*debian["text"].to_list()[:5], "", "naïve Ünïcode — tokens"]
    got = encode(texts, EmbedParams(backend="static"))
    for text, row in zip(texts, got, strict=True):  # one text at a time, the slow obvious way
        ids = tok.encode(text, add_special_tokens=False).ids or [tok.token_to_id("[UNK]")]
        want = table[ids].sum(0)
        assert np.allclose(row, want / np.linalg.norm(want), atol=1e-5)


def test_static_neighbours_follow_the_labels(debian, torch_vectors) -> None:
    labels = debian["domain"].to_numpy()
    static = encode(debian["text"].to_list(), EmbedParams(backend="static"))
    acc_static = knn_label_accuracy(static, labels)
    acc_torch = knn_label_accuracy(torch_vectors, labels)
    shuffled = knn_label_accuracy(static, np.random.default_rng(0).permutation(labels))
    # Coarser than MiniLM, far better than chance (1/12): the distillation carried the semantics over.
    assert acc_static > 2.5 * shuffled
    assert acc_torch > acc_static - 0.02


def test_backends_keep_separate_caches_and_the_stage_records_the_backend(settings: Settings, tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "text": f"a short record about subject number {i} and its neighbours"} for i in range(40)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    first = ingest(settings, path, "p", IngestParams(embedding={"backend": "static"}, clusters=0))
    emb = first["stages"]["embed"]
    assert emb["backend"] == "static" and emb["encoded"] == 40 and emb["embed_params"]["backend"] == "static"
    static = np.asarray(Pool.load(settings, "p").embeddings()).copy()
    torch_run = ingest(settings, path, "p", IngestParams(clusters=0))["stages"]["embed"]
    assert torch_run["encoded"] == 40, "the torch space must not reuse static vectors"
    assert not torch_run["cached"] and torch_run["path"] != emb["path"]
    renamed = write_jsonl(tmp_path / "q.jsonl", [{**r, "id": "q" + r["id"]} for r in rows])  # another fingerprint
    again = ingest(settings, renamed, "q", IngestParams(model="all-MiniLM-L6-v2", embedding={"backend": "static"}))
    assert not again["stages"]["embed"]["cached"]
    assert again["stages"]["embed"]["encoded"] == 0  # same static space: every vector from the cache
    assert np.array_equal(np.asarray(Pool.load(settings, "q").embeddings()), static)


def test_interrupted_embedding_resumes_from_the_flushed_shards(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after two units: both are in the cache, the rerun encodes only the rest, same vectors."""
    texts = corpus("debian", n_domains=4, per_domain=16, seed=5)["text"].to_list()
    path = write_jsonl(tmp_path / "i.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    monkeypatch.setattr(TorchEmbedder, "unit_rows", 16)  # four units of work instead of one

    def interrupt(done: int, total: int) -> None:
        if done >= 32:  # two units finished (a stage also reports 0/n when it starts)
            raise KeyboardInterrupt

    params = IngestParams(clusters=0)
    cache = EmbeddingCache(settings.cache_dir / "embeddings" / get_embedder(params.embedding).cache_id)
    wanted = set(text_hashes(pl.Series(texts)).to_list())
    before = set(cache.index()["text_hash"].to_list()) & wanted  # the cache is shared with other tests
    with pytest.raises(KeyboardInterrupt):
        ingest(settings, path, "i", params, progress=lambda stage, d, t: interrupt(d, t) if stage == "embed" else None)
    pool = Pool.load(settings, "i")
    assert not pool.has_feature("embed")  # nothing half-written ...
    hashes = set(pool.scan().select("text_hash").collect()["text_hash"].to_list())
    assert hashes == wanted
    kept = (set(cache.index()["text_hash"].to_list()) & hashes) - before
    assert len(kept) == 32  # ... but both finished units are on disk
    report = ingest(settings, path, "i", params)["stages"]["embed"]
    assert report["encoded"] == 32 - len(before) and report["cache_hits"] == 32 + len(before)
    assert np.allclose(Pool.load(settings, "i").embeddings(), encode(texts, EmbedParams()), atol=1e-5)


def test_cuda_requested_without_a_gpu_is_an_input_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error path needs one without")
    with pytest.raises(InputError, match="cuda"):
        get_embedder(EmbedParams(device="cuda"))
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "one"}, {"text": "two"}])
    proc = run_cli("ingest", str(path), "--pool", "c", "--device", "cuda", "--json", home=tmp_path / "h")
    assert proc.returncode == 2 and "cuda" in json.loads(proc.stdout)["error"]["message"]
    assert not (tmp_path / "h" / "pools").exists() or not any((tmp_path / "h" / "pools").iterdir())


def test_gpu_path_matches_cpu() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch: the GPU path runs only where one is")
    texts = ["a GPU should give the CPU's vectors", "up to float rounding", "for every backend on torch"]
    auto = get_embedder(EmbedParams())
    assert auto.device == "cuda"  # auto picks the GPU when there is one
    gpu = encode(texts, EmbedParams(device="cuda"))
    cpu = encode(texts, EmbedParams(device="cpu"))
    assert (gpu * cpu).sum(1).min() > 0.999


def test_cli_backend_option_and_tarot_target_in_the_same_space(tmp_path: Path, debian) -> None:
    pool_file = write_jsonl(
        tmp_path / "pool.jsonl", [{"id": r["id"], "text": r["text"], "domain": r["domain"]} for r in debian.to_dicts()]
    )
    target_texts = debian.filter(debian["domain"] == debian["domain"][0])["text"].to_list()[:8]
    target = write_jsonl(tmp_path / "target.jsonl", [{"text": t} for t in target_texts])
    home = tmp_path / "h"
    run_cli("ingest", str(pool_file), "--pool", "d", "--backend", "static", "--clusters", "4", home=home, check=True)
    settings = Settings(home=home)
    info = json.loads((Pool.load(settings, "d").feature_path("embed") / "stage.json").read_text())
    assert info["backend"] == "static" and info["device"] == "cpu"

    from curate.selectors.base import SelectionContext  # what tarot itself embeds the target with
    from curate.selectors.tarot import target_embeddings
    from curate.target import resolve_target

    pool = Pool.load(settings, "d")
    ctx = SelectionContext(pool=pool, budget=10, seed=0, target=resolve_target(settings, str(target)))
    got = target_embeddings(ctx)
    assert np.allclose(got, encode(target_texts, EmbedParams(backend="static")), atol=1e-6)


def test_static_fit_moves_the_static_space_towards_the_network(settings: Settings, tmp_path: Path, debian) -> None:
    from scipy.stats import spearmanr

    path = write_jsonl(tmp_path / "d.jsonl", debian.select("id", "text", "domain").to_dicts())
    report = ingest(settings, path, "d", IngestParams(embedding={"backend": "static", "static_fit": 200}, clusters=0))
    used = report["stages"]["embed"]["embed_params"]
    assert used["backend"] == "static" and Path(used["model"]).is_dir()  # the fitted model, kept for targets
    fitted = np.asarray(Pool.load(settings, "d").embeddings())
    assert np.allclose(fitted, encode(debian["text"].to_list(), EmbedParams(**used)), atol=1e-6)
    plain = encode(debian["text"].to_list(), EmbedParams(backend="static"))
    ref = encode(debian["text"].to_list(), EmbedParams())
    iu = np.triu_indices(len(ref), 1)

    def rho(x: np.ndarray) -> float:
        return float(spearmanr((ref @ ref.T)[iu], (x @ x.T)[iu]).statistic)

    assert rho(fitted) > rho(plain) + 0.1  # the regression onto the network's vectors did its job
    assert (fitted * ref).sum(1).mean() > 0.5  # and in the network's own basis, not a rotation of it


def test_one_embed_params_model_behind_cli_yaml_and_rest(tmp_path: Path) -> None:
    from api.schemas import IngestRequest
    from pipelines.spec import load_spec

    spec = tmp_path / "p.yaml"
    spec.write_text(
        "ingest:\n  path: pool.jsonl\n  pool: p\n  embedding: {backend: onnx-int8, device: cpu}\n"
        "selections:\n  - {selector: random, budget: 10}\n"
    )
    got = load_spec(spec).ingest
    assert got.embedding == EmbedParams(backend="onnx-int8", device="cpu") and got.model == got.embedding.model
    assert IngestRequest(backend="static", device="auto").backend == "static"
    with pytest.raises(ValueError):
        IngestRequest(backend="tensorflow")
    with pytest.raises(ValueError, match="disagree"):  # two spellings of the model must agree
        IngestParams(model="a", embedding={"model": "b"})
