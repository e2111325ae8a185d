"""PyTorch datasets and a sampler over a static manifest, honouring its weights, sharded by rank.

Two ways to use ``weight`` (mean 1 over the subset):

- **sampling** — draw records with probability ∝ weight (``WeightedShardSampler``, or
  ``ManifestIterableDataset(weighting="sample")``); train with a plain mean loss.
- **loss weighting** — read each record once (``weighting="loss"``) and multiply its loss by
  ``weight``; the mean of 1 keeps the loss scale (and the learning rate) unchanged.

Do one or the other, not both: sampling by weight *and* weighting the loss counts each weight twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow.parquet as pq
import torch.utils.data as tud

from curate.data.source import read_weights, shard_rows, weighted_draw

Weighting = Literal["loss", "sample"]


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else torch.distributed's when it is initialised, else a single process."""
    import torch.distributed as dist

    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    return rank, world_size


class ManifestDataset(tud.Dataset):
    """Map-style: ``dataset[i]`` is row ``i`` of the subset (rank order) as a dict. The Parquet file is
    memory-mapped, so indexing a million-row manifest does not load its texts."""

    def __init__(self, path: str | Path, columns: list[str] | None = None) -> None:
        self.path, self.columns = Path(path), columns
        self._table = None

    @property
    def table(self):
        if self._table is None:  # opened lazily: each DataLoader worker maps the file itself
            self._table = pq.read_table(self.path, columns=self.columns, memory_map=True)
        return self._table

    def __len__(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.table.slice(int(i), 1).to_pydict().items()}

    @property
    def weights(self) -> np.ndarray:
        return read_weights(self.path)


class WeightedShardSampler(tud.Sampler[int]):
    """Indices of this rank's shard drawn ∝ weight, ``num_samples`` per epoch (default: the shard's
    size), reseeded by ``set_epoch`` like ``DistributedSampler``; every rank draws only its own rows."""

    def __init__(
        self,
        weights: np.ndarray,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
    ) -> None:
        self.weights = np.asarray(weights, np.float64)
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.rows = shard_rows(len(self.weights), self.rank, self.world_size)
        self.num_samples = len(self.rows) if num_samples is None else int(num_samples)
        self.replacement, self.seed, self.epoch = replacement, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        drawn = weighted_draw(self.weights, self.rows, self.num_samples, [self.seed, self.epoch, self.rank],
                              self.replacement)  # fmt: skip
        return iter(drawn.tolist())

    def __len__(self) -> int:
        if self.replacement:
            return self.num_samples
        return min(self.num_samples, int((self.weights[self.rows] > 0).sum()))


class ManifestIterableDataset(tud.IterableDataset):
    """Streams this rank's (and DataLoader worker's) rows in batches of ``batch_rows``; memory stays
    at one batch plus the shuffle buffer. ``weighting="loss"``: each row once, in rank order, with
    its weight for the loss. ``"sample"``: rows drawn ∝ weight with replacement (as many draws as
    the shard has rows), each yielded as often as drawn, mixed through a seeded shuffle buffer."""

    def __init__(
        self,
        path: str | Path,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        weighting: Weighting = "loss",
        seed: int = 0,
        columns: list[str] | None = None,
        batch_rows: int = 8192,
        shuffle_buffer: int = 10_000,
    ) -> None:
        self.path, self.weighting, self.seed, self.columns = Path(path), weighting, seed, columns
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.batch_rows, self.shuffle_buffer, self.epoch = batch_rows, shuffle_buffer, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _counts(self, n: int, worker: int, workers: int) -> np.ndarray:
        """How many times each row of the file is yielded by this worker of this rank."""
        rows = shard_rows(n, self.rank, self.world_size, worker, workers)
        counts = np.zeros(n, np.int64)
        if self.weighting == "loss":
            counts[rows] = 1
        else:
            seed = [self.seed, self.epoch, self.rank, worker]
            np.add.at(counts, weighted_draw(read_weights(self.path), rows, len(rows), seed, True), 1)
        return counts

    def __iter__(self) -> Iterator[dict]:
        info = tud.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        file = pq.ParquetFile(self.path)
        counts = self._counts(file.metadata.num_rows, worker, workers)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])
        buffer: list[dict] = []
        start = 0
        for batch in file.iter_batches(batch_size=self.batch_rows, columns=self.columns):
            here = counts[start : start + batch.num_rows]
            start += batch.num_rows
            keep = np.flatnonzero(here)
            if not len(keep):
                continue
            rows = batch.take(np.repeat(keep, here[keep])).to_pylist()
            if self.weighting == "loss":
                yield from rows
                continue
            buffer.extend(rows)
            while len(buffer) > self.shuffle_buffer:  # swap a random row to the end, yield it
                i = int(rng.integers(len(buffer)))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer
