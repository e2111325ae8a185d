"""A static manifest as a Hugging Face ``datasets`` dataset (``pip install 'curate[data]'``).

Streaming (the default) gives an ``IterableDataset`` read from the Parquet file in batches; with
``rank``/``world_size`` it is split by ``datasets.distributed.split_dataset_by_node``, which for one
file hands every ``world_size``-th row to a rank: disjoint shards that together cover the subset.
Rows carry ``weight``: multiply the loss by it, or sample by it (see ``curate.data`` docs), not both.
"""

from __future__ import annotations

from pathlib import Path


def hf_dataset(path: str | Path, *, streaming: bool = True, rank: int | None = None, world_size: int | None = None):
    """The subset file (see ``curate.data.subset_file``) as ``datasets.IterableDataset`` (or, with
    ``streaming=False``, a memory-mapped ``datasets.Dataset``), optionally this rank's shard only."""
    try:
        import datasets
    except ImportError:  # an optional extra: say how to get it
        raise ImportError("curate.data.hf_dataset needs the datasets package: pip install 'curate[data]'") from None
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=streaming)
    if world_size is not None and world_size > 1:
        if streaming:
            from datasets.distributed import split_dataset_by_node

            return split_dataset_by_node(ds, rank=rank or 0, world_size=world_size)
        return ds.shard(num_shards=world_size, index=rank or 0, contiguous=False)
    return ds
