"""A pool on disk: records.parquet plus pointers to its cached features."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from curate import catalog
from curate.config import Settings
from curate.errors import InputError, NotFoundError
from curate.io import locked, write_json
from curate.records import canonical_json, sha256_hex
from curate.stages.ngrams import NgramFeatures


@dataclass
class Pool:
    settings: Settings
    id: str
    name: str
    fingerprint: str
    n_records: int
    dir: Path
    info: dict

    @classmethod
    def load(cls, settings: Settings, name_or_id: str) -> Pool:
        row = catalog.get_pool(settings, name_or_id)
        path = Path(row.path)
        info = json.loads((path / "pool.json").read_text())
        return cls(settings, row.id, row.name, row.fingerprint, row.n_records, path, info)

    @property
    def records_path(self) -> Path:
        return self.dir / "records.parquet"

    @property
    def features_root(self) -> Path:
        return self.settings.features_dir / self.fingerprint[:24]

    def ref(self) -> dict:
        return {"id": self.id, "name": self.name, "fingerprint": self.fingerprint, "n_records": self.n_records}

    def describe(self, row: catalog.PoolRow | None = None) -> dict:
        """What ``curate pools`` and ``GET /v1/pools`` show: never a server path."""
        row = row or catalog.get_pool(self.settings, self.id)
        source = (row.info or {}).get("source") or {"kind": "cli"}
        return {
            **self.ref(),
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "fields": self.info.get("fields", {}),
            "features": [k for k in ("ngrams", "embed", "cluster") if self.has_feature(k)],
            "source": {k: v for k, v in source.items() if k != "path"},
        }

    # --- records ---------------------------------------------------------------------------

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.records_path)

    def iter_batches(self, columns: list[str], batch_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        for batch in pq.ParquetFile(self.records_path).iter_batches(columns=columns, batch_size=batch_rows):
            yield pl.from_arrow(batch)

    def iter_column(self, name: str, batch_rows: int = 50_000) -> Iterator[pl.Series]:
        for frame in self.iter_batches([name], batch_rows):
            yield frame.to_series()

    def iter_rows_where(
        self, row_ids: np.ndarray, columns: list[str], batch_rows: int = 8192
    ) -> Iterator[pl.DataFrame]:
        """Only the wanted rows (sorted ``row_ids``), in row order, in batches of ``batch_rows``."""
        wanted = np.sort(np.asarray(row_ids, np.int64))
        pending: list[pl.DataFrame] = []
        pending_rows = 0
        for frame in self.iter_batches(["row_id", *columns]):
            ids = frame["row_id"].to_numpy()
            lo, hi = np.searchsorted(wanted, [ids[0], ids[-1] + 1])
            if lo == hi:
                continue
            mask = np.isin(ids, wanted[lo:hi], assume_unique=True)
            pending.append(frame.filter(pl.Series(mask)))
            pending_rows += pending[-1].height
            while pending_rows >= batch_rows:
                merged = pl.concat(pending)
                yield merged.head(batch_rows)
                rest = merged.slice(batch_rows)
                pending, pending_rows = [rest], rest.height
        if pending_rows:
            yield pl.concat(pending)

    def column(self, name: str) -> pl.Series:
        return self.scan().select(name).collect().to_series()

    @property
    def has_domain(self) -> bool:
        return bool(self.info.get("fields", {}).get("domain"))

    # --- features --------------------------------------------------------------------------

    def feature_path(self, kind: str) -> Path | None:
        rel = self.info.get("features", {}).get(kind)
        return self.features_root / rel if rel else None

    def set_feature(self, kind: str, path: Path) -> str | None:
        """Re-read and merge under a lock: two ingest jobs on one pool (different stages, different
        workers) must not drop each other's feature pointer. Returns the folder it replaced, if any."""
        with locked(self.dir / ".pool.json.lock"):
            info = json.loads((self.dir / "pool.json").read_text())
            previous = info.setdefault("features", {}).get(kind)
            info["features"][kind] = path.name
            write_json(self.dir / "pool.json", info)
        self.info = info
        return previous if previous != path.name else None

    def stage_info(self, kind: str) -> dict | None:
        """The stage.json of the pool's current ``kind`` feature (its config and stats)."""
        path = self.feature_path(kind)
        if path is None or not (path / "stage.json").exists():
            return None
        return json.loads((path / "stage.json").read_text())

    def feature_refs(self) -> dict:
        """What each present feature was computed with, as a manifest records it (and hashes into its
        id): the config hash, plus the model's content hash for embeddings and k for clusters."""
        out = {}
        for kind in sorted(self.info.get("features", {})):
            info = self.stage_info(kind)
            if info is None:
                continue
            ref = {"config": sha256_hex(canonical_json(info["config"]))}
            if kind == "embed":
                ref["model"] = info.get("model_key") or info.get("model")
            if kind == "cluster":
                ref["k"] = info.get("k")
            out[kind] = ref
        return out

    def _require(self, kind: str, hint: str) -> Path:
        path = self.feature_path(kind)
        if path is None or not (path / "stage.json").exists():
            raise InputError(f"pool '{self.name}' has no {kind}; {hint}")
        return path

    def embeddings(self) -> np.ndarray:
        path = self._require("embed", "ingest it with --embed (or --embedding-field)")
        return np.load(path / "embeddings.npy", mmap_mode="r")

    def ngrams(self) -> NgramFeatures:
        return NgramFeatures(self._require("ngrams", "re-run curate ingest to compute n-grams"))

    def clusters(self) -> np.ndarray:
        path = self._require("cluster", "ingest it with embeddings and --clusters K (K > 0)")
        return np.load(path / "assign.npy", mmap_mode="r")

    def cluster_distance(self) -> np.ndarray:
        path = self._require("cluster", "ingest it with embeddings and --clusters K (K > 0)")
        return np.load(path / "distance.npy", mmap_mode="r")

    def has_feature(self, kind: str) -> bool:
        path = self.feature_path(kind)
        return path is not None and (path / "stage.json").exists()


def manifest_pool(settings: Settings, doc: dict) -> Pool:
    """The pool a manifest ``doc`` was selected from, refused when it was replaced since (its
    row ids would no longer name the records the manifest lists)."""
    try:
        pool = Pool.load(settings, doc["pool"]["id"])
    except NotFoundError:
        raise NotFoundError(f"the manifest's pool {doc['pool']['id']} is not in this catalog", field="pool") from None
    if pool.fingerprint != doc["pool"]["fingerprint"]:
        raise InputError("the manifest's pool was replaced since; its records no longer match", field="pool")
    return pool


def subset_rows(pool: Pool, subset: pl.DataFrame) -> pl.DataFrame:
    """A manifest's ``subset`` rows (id, rank, ...) with their pool ``row_id``, in rank order; every
    id must be in the pool."""
    joined = pool.scan().select("row_id", "id").join(subset.lazy(), on="id").sort("rank").collect()
    if joined.height != subset.height:
        raise InputError(
            f"{subset.height - joined.height} manifest ids are not in pool '{pool.name}'", field="manifest"
        )
    return joined


def replaced_feature(kind: str, before: dict, after: dict) -> str:
    """The warning an ingest gives when it swaps a feature the pool had (issue 16: re-clustering
    a pool silently changed what every later selection saw)."""

    def what(info: dict) -> str:
        if kind == "cluster":
            return f"k={info.get('k')}"
        if kind == "embed":
            return f"model {info.get('model')}"
        return f"config {json.dumps(info.get('config', {}).get('params'), sort_keys=True)}"

    return (
        f"{kind}: replaced {what(before)} with {what(after)}; manifests made before keep their ids and files, "
        f"new selections on this pool use the new {kind} (pass the old setting to get the old one back)"
    )
