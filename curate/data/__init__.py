"""Training-side loaders for static manifests: the subset's rows with text, weight and original
fields, from a local manifest folder or a curate server, as PyTorch or Hugging Face datasets,
sharded for data-parallel ranks. See docs/consuming.md.

    path = subset_file("3f2a", home=".curate")                 # or url="http://host:8000", token=...
    ds = ManifestIterableDataset(path, rank=rank, world_size=world, weighting="loss")
    hf = hf_dataset(path, rank=rank, world_size=world)         # needs `pip install 'curate[data]'`
"""

from curate.data.hf import hf_dataset
from curate.data.source import shard_rows, subset_file
from curate.data.torch_data import ManifestDataset, ManifestIterableDataset, WeightedShardSampler

__all__ = [
    "ManifestDataset",
    "ManifestIterableDataset",
    "WeightedShardSampler",
    "hf_dataset",
    "shard_rows",
    "subset_file",
]
