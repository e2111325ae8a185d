"""Ray executor: the same tasks over the same units as Ray Data ``map_batches``, one unit per batch.

Units are planned by the driver (see ``base``), so Ray only decides *where* a unit runs, never how
the rows are cut: results are identical to the local executor's. Stateless tasks run as Ray tasks;
stateful ones (a model) in an actor pool sized to the cluster, so each worker loads the model once.
Workers read the pool's files directly, so on a multi-node cluster CURATE_HOME must be shared storage.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import curate
from curate.executors.base import Executor, ExecutorSpec, Task


def _pack(batch: dict, outs: list) -> dict:
    payload = np.empty(len(outs), dtype=object)
    payload[:] = [pickle.dumps(o, protocol=5) for o in outs]
    return {"i": np.asarray(batch["i"], np.int64), "out": payload}


def _run_stateless(batch: dict, task: Task) -> dict:
    task.setup()
    return _pack(batch, [task(pickle.loads(u)) for u in batch["unit"]])


class _TaskActor:
    """Holds one set-up task (e.g. a loaded model) for the actor's lifetime."""

    def __init__(self, task: Task) -> None:
        self.task = task
        task.setup()

    def __call__(self, batch: dict) -> dict:
        return _pack(batch, [self.task(pickle.loads(u)) for u in batch["unit"]])


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        import ray

        self.spec = spec or ExecutorSpec(kind="ray")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
            address = self.spec.address or os.environ.get("RAY_ADDRESS")
            if address:
                kwargs["address"] = address
            else:  # a cluster started here: its workers import this very curate checkout
                kwargs["num_cpus"] = self.spec.num_cpus
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": str(Path(curate.__file__).resolve().parents[1])}}
            ray.init(**kwargs)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines in CLI output
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True

    def workers(self) -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, task: Task, units: Sequence[Any]) -> Iterator[Any]:
        import ray

        if not units:
            return
        items = [{"i": i, "unit": pickle.dumps(u, protocol=5)} for i, u in enumerate(units)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        if task.stateful:
            size = min(self.spec.concurrency or self.workers(), len(units))
            ds = ds.map_batches(_TaskActor, fn_constructor_args=(task,), batch_size=1, concurrency=size, num_cpus=1)
        else:
            ds = ds.map_batches(_run_stateless, fn_args=(task,), batch_size=1, num_cpus=1)
        # preserve_order already orders the stream; the buffer only guards that contract.
        pending: dict[int, Any] = {}
        want = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, out in zip(batch["i"].tolist(), batch["out"], strict=True):
                pending[i] = out
            while want in pending:
                yield pickle.loads(pending.pop(want))
                want += 1
        if want != len(units):
            raise RuntimeError(f"ray executor returned {want} of {len(units)} units")
