"""Hashed n-gram counts (DSIR's feature space), vectorised end to end.

Tokens come from one polars regex over the whole chunk; only the chunk's *distinct* tokens (or, in
``sha256`` mode, distinct n-grams) are hashed in Python, and n-gram hashes are combined in numpy.
``hash="sha256"`` reproduces the reference package's buckets exactly (sha256 of the space-joined
n-gram, mod ``num_buckets``); ``hash="fast"`` (default) is a stable blake2b/splitmix64 scheme that
is several times faster and buckets differently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import Field

from curate.executors.base import Task, current_executor, read_row_range, row_ranges
from curate.stages.base import Progress, Stage, StageParams

if TYPE_CHECKING:
    from curate.pool import Pool

TOKEN_PATTERNS = {"wordpunct": r"\w+|[^\w\s]+", "whitespace": r"\S+"}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_ROWS_PER_PART = 20_000


class NgramParams(StageParams):
    num_buckets: int = Field(10_000, ge=1, description="Hash buckets (DSIR default 10,000).")
    ngram_order: int = Field(2, ge=1, le=5, description="Count all 1..n-grams (2 = unigrams + bigrams).")
    tokenizer: Literal["wordpunct", "whitespace"] = Field(
        "wordpunct", description="wordpunct = runs of word chars or of punctuation (as nltk's)."
    )
    lowercase: bool = True
    hash: Literal["fast", "sha256"] = Field(
        "fast", description="fast = blake2b+splitmix64; sha256 = the data-selection package's buckets."
    )


def _splitmix(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def tokenize(texts: pl.Series, params: NgramParams) -> pl.Series:
    s = texts.str.to_lowercase() if params.lowercase else texts
    return s.str.extract_all(TOKEN_PATTERNS[params.tokenizer])


def _map_distinct(values: pl.Series, fn) -> np.ndarray:
    """Apply a Python hash to each distinct value only, then broadcast back vectorised."""
    distinct = values.unique()
    hashed = pl.Series([fn(v) for v in distinct.to_list()], dtype=pl.UInt64)
    return values.replace_strict(distinct, hashed, return_dtype=pl.UInt64).to_numpy()


def _blake64(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def featurize(texts: pl.Series, params: NgramParams) -> tuple[sp.csr_matrix, np.ndarray]:
    """(CSR counts [n_docs × num_buckets] int32, tokens per doc int64) for a batch of texts."""
    n, m = len(texts), params.num_buckets
    lists = tokenize(texts, params)
    n_tokens = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    tokens = lists.explode().drop_nulls()
    doc = np.repeat(np.arange(n, dtype=np.int64), n_tokens)
    rows, cols = [], []
    if len(tokens):
        if params.hash == "fast":
            tok_h = _map_distinct(tokens, _blake64)
            h = tok_h
            for j in range(1, params.ngram_order + 1):
                if j > 1:
                    h = _splitmix(h[:-1] * _GOLDEN + tok_h[j - 1 :])
                valid = doc[: len(h)] == doc[j - 1 :]
                rows.append(doc[: len(h)][valid])
                cols.append((h[valid] % np.uint64(m)).astype(np.int64))
        else:
            grams = tokens
            for j in range(1, params.ngram_order + 1):
                if j > 1:
                    grams = grams.head(len(grams) - 1) + " " + tokens.slice(j - 1)
                valid = doc[: len(grams)] == doc[j - 1 :]
                kept = grams.filter(pl.Series(valid))
                rows.append(doc[: len(grams)][valid])
                cols.append(
                    _map_distinct(kept, lambda g: int(hashlib.sha256(g.encode("utf-8")).hexdigest(), 16) % m).astype(
                        np.int64
                    )
                )
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    counts = sp.csr_matrix((np.ones(len(r), np.int32), (r, c)), shape=(n, m), dtype=np.int32)
    counts.sum_duplicates()
    counts.sort_indices()
    return counts, n_tokens


class NgramTask(Task):
    """Featurise rows [start, stop) of a records file: rows are independent, so any worker will do."""

    def __init__(self, records: Path, params: NgramParams) -> None:
        self.records, self.params = records, params

    def __call__(self, unit: tuple[int, int]) -> tuple[sp.csr_matrix, np.ndarray]:
        return featurize(read_row_range(self.records, ["text"], *unit)["text"], self.params)


class NgramStage(Stage):
    name = "ngrams"
    params: NgramParams

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        """One part per fixed row range, whichever executor featurises it: the same artifact bytes."""
        parts, lengths, nnz, start = [], [], 0, 0
        (out / "parts").mkdir()
        units = row_ranges(pool.n_records, _ROWS_PER_PART)
        for counts, n_tokens in current_executor().map(NgramTask(pool.records_path, self.params), units):
            name = f"parts/part-{len(parts):05d}.npz"
            sp.save_npz(out / name, counts, compressed=False)
            parts.append({"path": name, "start": start, "rows": counts.shape[0]})
            lengths.append(n_tokens)
            nnz += counts.nnz
            start += counts.shape[0]
            progress(start, pool.n_records)
        np.save(out / "n_tokens.npy", np.concatenate(lengths) if lengths else np.empty(0, np.int64))
        (out / "parts.json").write_text(json.dumps(parts))
        return {"nnz": nnz, "num_buckets": self.params.num_buckets, "parts": len(parts)}


class NgramFeatures:
    """Read side of the n-gram artifact: stream parts, or load the whole matrix when small."""

    def __init__(self, path: Path) -> None:
        self.path = path
        info = json.loads((path / "stage.json").read_text())
        self.params = NgramParams(**info["config"]["params"])
        self.parts = json.loads((path / "parts.json").read_text())

    @property
    def n_tokens(self) -> np.ndarray:
        return np.load(self.path / "n_tokens.npy", mmap_mode="r")

    def iter_parts(self) -> Iterator[tuple[int, sp.csr_matrix]]:
        for part in self.parts:
            yield part["start"], sp.load_npz(self.path / part["path"]).tocsr()

    def matrix(self) -> sp.csr_matrix:
        mats = [m for _, m in self.iter_parts()]
        if not mats:
            return sp.csr_matrix((0, self.params.num_buckets), dtype=np.int32)
        return sp.vstack(mats, format="csr")

    def totals(self) -> np.ndarray:
        """Summed counts per bucket over the pool (float64), streamed part by part."""
        total = np.zeros(self.params.num_buckets, np.float64)
        for _, m in self.iter_parts():
            total += np.asarray(m.sum(axis=0), dtype=np.float64).ravel()
        return total
