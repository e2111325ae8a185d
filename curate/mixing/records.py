"""Groups and the records a step serves: pure functions of the immutable pool, cached per process.

Only ``(group, epoch, position, count)`` is stored per micro-batch; the records are recomputed
from seeded per-group permutations, so any process can serve or replay any step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curate.algorithms.bandit import MixingParams
from curate.errors import InputError
from curate.pool import Pool
from curate.selectors.stratified import NO_DOMAIN

_PERM_STREAM = 1  # SeedSequence stream of the per-group epoch permutations


@dataclass(eq=False)
class GroupIndex:
    names: list[str]
    members: list[np.ndarray]  # row ids of each group, ascending
    ids: pl.Series  # record id by row id

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(m) for m in self.members], np.int64)


def _labels(pool: Pool, group_by: str) -> np.ndarray:
    if group_by == "domain":
        if not pool.has_domain:
            raise InputError(f"pool '{pool.name}' has no domain field; use group_by=cluster", field="group_by")
        return pool.column("domain").fill_null(NO_DOMAIN).cast(pl.String).to_numpy()
    if not pool.has_feature("cluster"):
        raise InputError(f"pool '{pool.name}' has no clusters; ingest with --clusters K", field="group_by")
    return np.asarray(pool.clusters()).astype(np.int64).astype(str)


_INDEXES: dict[tuple[str, str, str], GroupIndex] = {}


def group_index(pool: Pool, group_by: str) -> GroupIndex:
    """Row ids per group, sorted by group name; pools are immutable, so cached per process."""
    key = (str(pool.dir), pool.fingerprint, group_by)
    if key not in _INDEXES:
        names, inv = np.unique(_labels(pool, group_by), return_inverse=True)
        order = np.argsort(inv, kind="stable").astype(np.int64)
        members = np.split(order, np.cumsum(np.bincount(inv, minlength=len(names)))[:-1])
        if len(_INDEXES) >= 8:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = GroupIndex([str(n) for n in names], members, pool.column("id").cast(pl.String))
    return _INDEXES[key]


@lru_cache(maxsize=512)
def _permutation(index: GroupIndex, group: int, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _PERM_STREAM, group, epoch]))
    return index.members[group][rng.permutation(len(index.members[group]))]


def take(index: GroupIndex, seed: int, group: int, epoch: int, pos: int, count: int):
    """``count`` rows of ``group`` from stream position (epoch, pos); returns draws and the new position."""
    size = len(index.members[group])
    draws = []
    while count > 0:
        n = min(count, size - pos)
        draws.append([group, epoch, pos, n])
        pos, count = pos + n, count - n
        if pos == size:
            epoch, pos = epoch + 1, 0
    return draws, epoch, pos


def rows_of(index: GroupIndex, seed: int, draws: list) -> np.ndarray:
    parts = [_permutation(index, g, seed, e)[p : p + n] for g, e, p, n in draws]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@lru_cache(maxsize=8)  # a row group holds up to chunk_rows texts: keep few; big pools want with_text=False
def _row_group(path: str, group: int) -> pa.Array:
    return pq.ParquetFile(path).read_row_group(group, columns=["text"]).column("text").combine_chunks()


@lru_cache(maxsize=16)
def _row_group_offsets(path: str) -> np.ndarray:
    meta = pq.ParquetFile(path).metadata
    return np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])


def texts_of(pool_dir: str, rows: np.ndarray) -> list[str]:
    """Texts of ``rows`` (row id = position in records.parquet) reading only the row groups touched."""
    path = f"{pool_dir}/records.parquet"
    offsets = _row_group_offsets(path)
    rg = np.searchsorted(offsets, rows, side="right") - 1
    out: list[str] = [""] * len(rows)
    for g in np.unique(rg):
        sel = np.flatnonzero(rg == g)
        values = _row_group(path, int(g)).take(pa.array(rows[sel] - offsets[g])).to_pylist()
        for i, v in zip(sel.tolist(), values, strict=True):
            out[i] = v
    return out


def init_weights(pool: Pool, index: GroupIndex, params: MixingParams) -> np.ndarray:
    if params.init_weights is not None:
        unknown = sorted(set(params.init_weights) - set(index.names))
        if unknown:
            raise InputError(f"unknown groups in init_weights: {', '.join(unknown)}", field="params.init_weights")
        w = np.array([float(params.init_weights.get(n, 0.0)) for n in index.names])
        if (w < 0).any() or w.sum() <= 0:
            raise InputError("init_weights must be ≥ 0 and not all 0", field="params.init_weights")
        return w / w.sum()
    if params.init == "uniform":
        return np.full(len(index.names), 1.0 / len(index.names))
    if params.init == "records":
        return index.sizes / index.sizes.sum()
    label = np.empty(pool.n_records, np.int64)  # tokens: whitespace tokens per group, streamed
    for g, rows in enumerate(index.members):
        label[rows] = g
    tokens = np.zeros(len(index.names))
    start = 0
    for texts in pool.iter_column("text"):
        counts = texts.str.count_matches(r"\S+").fill_null(0).to_numpy().astype(np.float64)
        tokens += np.bincount(label[start : start + len(counts)], weights=counts, minlength=len(index.names))
        start += len(counts)
    if tokens.sum() <= 0:
        raise InputError(f"pool '{pool.name}' has no tokens to weight by; use init=uniform", field="params.init")
    return tokens / tokens.sum()
