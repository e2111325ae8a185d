"""curate: pick weighted training subsets from large candidate pools, reproducibly."""

__version__ = "0.1.0"
