"""Sentence embeddings, offline, with a content-addressed cache so no text is ever encoded twice.

The cache is keyed by (vector space, text hash): the same text in another pool, or a pool
re-ingested under another name, costs a lookup instead of a forward pass. The vector space is the
model's content hash plus the backend's numeric variant (curate.embedders): a text under the static
model, under int8 ONNX and under fp32 torch gets three different vectors, so three caches.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from numpy.lib.format import open_memmap
from pydantic import Field

from curate.embedders import get_embedder
from curate.embedders.models import DEFAULT_MODEL, model_key, resolve_device, resolve_model
from curate.embedders.transformer import load_model
from curate.errors import InputError
from curate.executors.base import Task, current_executor, read_row_range
from curate.io import atomic_path
from curate.records import binary16_to_numpy, numpy_to_binary16
from curate.stages.base import Progress, Stage, StageParams

if TYPE_CHECKING:
    from curate.pool import Pool

__all__ = ["DEFAULT_MODEL", "EmbedParams", "EmbedStage", "encode", "load_model", "model_key", "resolve_model"]

Backend = Literal["torch", "onnx", "onnx-int8", "static"]
Device = Literal["auto", "cpu", "cuda"]
_SHARD_ROWS = 65_536
_FLUSH_SECONDS = 30.0  # an interrupted run loses at most this much encoding (plus the unit in flight)


class EmbedParams(StageParams):
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model: packaged name or local path.")
    backend: Backend = Field(
        "torch",
        description="torch (reference), onnx (same vectors, ONNX Runtime), onnx-int8 (~2-3x faster, cos ~0.99), "
        "static (token lookup + mean, >100x faster, coarser); see docs/embeddings.md.",
    )
    device: Device = Field("auto", description="auto: CUDA when torch (or onnxruntime) sees one, else CPU.")
    batch_size: int = Field(32, ge=1, description="Forward-pass batch (32 beats 128 on 2 CPU threads).")
    max_seq_length: int | None = Field(None, ge=8, description="Truncation; default: the model's own.")
    static_fit: int = Field(
        0,
        ge=0,
        description="static only: fit the token vectors to the network's embeddings of this many pool texts "
        "(a seeded sample; 8192 costs ~2-3 min of network time once per pool); 0 = data-free distillation.",
    )


def check_params(params: EmbedParams) -> None:
    """Fail on a bad model, a missing runtime or an absent GPU before any record is read."""
    path = resolve_model(params.model)
    if params.backend != "static":
        resolve_device(params.device) if params.backend == "torch" else _onnx_runtime()
    elif not (path / "tokenizer.json").exists():
        raise InputError(f"model '{params.model}' has no tokenizer.json: a static model needs one", field="model")


def _onnx_runtime() -> None:
    from curate.embedders.onnx import _require_runtime

    _require_runtime()


def encode(texts: list[str], params: EmbedParams) -> np.ndarray:
    """float32, L2-normalised embeddings of ``texts`` (used for targets and for pools alike)."""
    return get_embedder(params).encode(texts)


def same_space(a: EmbedParams, b: EmbedParams) -> bool:
    """Whether vectors made with ``a`` and ``b`` are comparable (device and batch size do not matter)."""
    keep = {"model", "backend", "max_seq_length"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)


def feature_params(feature_dir: Path) -> EmbedParams | None:
    """The parameters an embed feature was made with, so a target can be embedded alike (None: unknown)."""
    try:
        info = json.loads((feature_dir / "stage.json").read_text())
    except (OSError, TypeError, ValueError):
        return None
    if "embed_params" in info:
        return EmbedParams(**info["embed_params"])
    return EmbedParams(model=info["model"]) if info.get("model") else None


class EmbeddingCache:
    """Shards of (16-byte text hash, vector) pairs; a shard counts once its hashes file exists."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def shards(self) -> list[str]:
        return sorted(p.name[: -len(".hashes.npy")] for p in self.root.glob("*.hashes.npy"))

    def index(self, shards: list[str] | None = None) -> pl.DataFrame:
        """text_hash → (position in ``shards``, row in that shard); pass the list read once when
        the positions are used, since a concurrent writer may add shards in between."""
        frames = []
        for i, shard in enumerate(self.shards() if shards is None else shards):
            hashes = np.load(self.root / f"{shard}.hashes.npy")
            frames.append(
                pl.DataFrame(
                    {
                        "text_hash": numpy_to_binary16(hashes),
                        "shard": pl.Series(np.full(len(hashes), i, np.int32)),
                        "pos": pl.Series(np.arange(len(hashes), dtype=np.int64)),
                    }
                )
            )
        if not frames:
            return pl.DataFrame(schema={"text_hash": pl.Binary, "shard": pl.Int32, "pos": pl.Int64})
        return pl.concat(frames).unique("text_hash", keep="first", maintain_order=True)

    def vectors(self, shard: str) -> np.ndarray:
        return np.load(self.root / f"{shard}.vectors.npy", mmap_mode="r")

    def add(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        shard = uuid.uuid4().hex
        with atomic_path(self.root / f"{shard}.vectors.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
        with atomic_path(self.root / f"{shard}.hashes.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, hashes)


class EmbedStage(Stage):
    name = "embed"
    params: EmbedParams

    def config(self, pool: Pool) -> dict:
        cfg = super().config(pool)
        # The device changes where, not what; the default backend keeps the key it had before backends.
        params = {k: v for k, v in cfg["params"].items() if k != "device"}
        if self.params.backend == "torch":
            params.pop("backend")
        cfg["params"] = {**params, "model": model_key(resolve_model(self.params.model))}
        return cfg

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        encoder = fitted_static(pool, self.params, progress) if self.params.static_fit else self.params
        embedder = get_embedder(encoder)
        cache = EmbeddingCache(pool.settings.cache_dir / "embeddings" / embedder.cache_id)
        hashes = pool.scan().select("row_id", "text_hash").collect()
        known = cache.index()
        todo = (
            hashes.join(known.select("text_hash"), on="text_hash", how="anti")
            .unique("text_hash", keep="first")
            .sort("row_id")
        )
        encoded = self._encode_missing(pool, todo, cache, encoder, embedder.unit_rows, progress)
        shards = cache.shards()
        located = hashes.join(cache.index(shards), on="text_hash", how="left", maintain_order="left")
        dim = cache.vectors(shards[0]).shape[1] if shards else 0
        matrix = open_memmap(out / "embeddings.npy", mode="w+", dtype=np.float32, shape=(pool.n_records, dim))
        shard_ids = located["shard"].to_numpy()
        positions = located["pos"].to_numpy()
        order = np.argsort(shard_ids, kind="stable")  # one pass over the records, not one per shard
        bounds = np.searchsorted(shard_ids[order], np.arange(len(shards) + 1))
        for i, shard in enumerate(shards):
            rows = order[bounds[i] : bounds[i + 1]]
            if len(rows):
                matrix[rows] = cache.vectors(shard)[positions[rows]]
        matrix.flush()
        del matrix
        return {
            "model": self.params.model,
            "model_key": model_key(resolve_model(self.params.model)),
            "backend": self.params.backend,
            "device": embedder.device,
            "cache_id": embedder.cache_id,
            "embed_params": encoder.model_dump(mode="json"),  # what a target must be encoded with
            "dim": dim,
            "encoded": encoded,
            "cache_hits": pool.n_records - encoded,
        }

    def _encode_missing(
        self, pool: Pool, todo: pl.DataFrame, cache: EmbeddingCache, encoder: EmbedParams, unit: int, progress
    ) -> int:
        if todo.height == 0:
            progress(pool.n_records, pool.n_records)
            return 0
        wanted = todo["row_id"].to_numpy()
        # Units of `unit` wanted rows each: encode() sees the same batches on every executor.
        units = [
            (int(ids[0]), int(ids[-1]) + 1, ids) for ids in (wanted[i : i + unit] for i in range(0, len(wanted), unit))
        ]
        done, pending_h, pending_v = 0, [], []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal pending_h, pending_v, last_flush
            if pending_h:
                cache.add(np.concatenate(pending_h), np.concatenate(pending_v))
            pending_h, pending_v, last_flush = [], [], time.monotonic()

        try:
            for hashes, vectors in current_executor().map(EncodeTask(pool.records_path, encoder), units):
                pending_v.append(vectors)
                pending_h.append(hashes)
                done += len(vectors)
                # A shard per ~64k texts or per half minute, whichever comes first: a rerun after a
                # crash or Ctrl-C encodes only what no shard holds yet.
                if sum(map(len, pending_v)) >= _SHARD_ROWS or time.monotonic() - last_flush >= _FLUSH_SECONDS:
                    flush()
                progress(done, len(wanted))
        finally:
            flush()  # on success the tail; on an interrupt every finished unit
        return done


def fitted_static(pool: Pool, params: EmbedParams, progress: Progress) -> EmbedParams:
    """Parameters of the static model fitted to the network on a seeded sample of ``pool``.

    Built once per (base static model, sample texts) and kept with the derived models, so a re-ingest
    or another pool with the same sample reuses it; the pool's vectors live in that model's space."""
    import hashlib

    from curate.embedders.fit import fit_static
    from curate.embedders.models import derived_model
    from curate.embedders.static import is_static_folder

    source = resolve_model(params.model)
    if params.backend != "static" or is_static_folder(source):
        raise InputError("static_fit needs backend static and a sentence-transformers model to fit to", field="model")
    base = get_embedder(params.model_copy(update={"static_fit": 0}))
    rows = np.random.default_rng(0).choice(pool.n_records, min(pool.n_records, params.static_fit), replace=False)
    sample = pool.scan().filter(pl.col("row_id").is_in(np.sort(rows))).select("text", "text_hash").collect()
    digest = hashlib.sha256(base.cache_id.encode() + b"".join(sample["text_hash"].to_list())).hexdigest()[:16]

    def build(_source: Path, tmp: Path) -> None:
        teacher = get_embedder(params.model_copy(update={"backend": "torch", "static_fit": 0}))
        texts, parts = sample["text"].to_list(), []
        for start in range(0, len(texts), 512):  # the fit's network pass, reported like any encoding
            parts.append(teacher.encode(texts[start : start + 512]))
            progress(min(start + 512, len(texts)), len(texts))
        fit_static(base.path, texts, np.concatenate(parts), tmp)

    folder = derived_model(source, f"{base.path.name}-fit-{digest}", build)
    return EmbedParams(model=str(folder), backend="static", device=params.device, max_seq_length=params.max_seq_length)


class EncodeTask(Task):
    """Encode the wanted rows of one row range; stateful, so a Ray actor loads the model once."""

    stateful = True

    def __init__(self, records: Path, params: EmbedParams) -> None:
        self.records, self.params = records, params

    def setup(self) -> None:
        get_embedder(self.params)

    def __call__(self, unit: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, stop, ids = unit
        frame = read_row_range(self.records, ["row_id", "text", "text_hash"], start, stop)
        frame = frame.filter(pl.Series(np.isin(frame["row_id"].to_numpy(), ids)))
        return binary16_to_numpy(frame["text_hash"]), encode(frame["text"].to_list(), self.params)


class FieldVectorsParams(StageParams):
    field: str


class FieldVectorsStage(Stage):
    """Embeddings the caller brought in a record field (already validated and L2-normalised)."""

    name = "embed"

    def __init__(self, params: FieldVectorsParams, parts: list[Path] | None) -> None:
        super().__init__(params)
        self.parts = parts or []

    def compute(self, pool: Pool, out: Path, progress) -> dict:
        if not self.parts:
            raise InputError("no vectors were read; re-run ingest of the source file", field=self.params.field)
        dim = np.load(self.parts[0], mmap_mode="r").shape[1]
        matrix = open_memmap(out / "embeddings.npy", mode="w+", dtype=np.float32, shape=(pool.n_records, dim))
        start = 0
        for part in self.parts:
            block = np.load(part)
            if block.shape[1] != dim:
                raise InputError(f"vectors change length from {dim} to {block.shape[1]}", field=self.params.field)
            matrix[start : start + len(block)] = block
            start += len(block)
        matrix.flush()
        return {"model": f"field:{self.params.field}", "dim": int(dim), "encoded": 0, "cache_hits": 0}
