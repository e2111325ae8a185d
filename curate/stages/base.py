"""A feature stage: pool in, one cached artifact directory out.

Like a datatrove step, a stage is small and declarative; unlike one, its output is keyed by the
pool's content and the stage's config, so re-running ingest skips every stage already done.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from curate.io import atomic_path, write_json
from curate.records import canonical_json, sha256_hex

if TYPE_CHECKING:
    from curate.pool import Pool

Progress = Callable[[int, int], None]  # (done, total) in records


class StageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(self, params: StageParams) -> None:
        self.params = params

    def config(self, pool: Pool) -> dict:
        """Everything the output depends on besides the texts (the pool fingerprint covers those)."""
        return {"stage": self.name, "version": self.version, "params": self.params.model_dump(mode="json")}

    def output_dir(self, pool: Pool) -> Path:
        key = sha256_hex(canonical_json(self.config(pool)))[:12]
        return pool.features_root / f"{self.name}-{key}"

    def run(self, pool: Pool, progress: Progress | None = None) -> dict:
        """Compute into a temp dir and rename into place; skip when the artifact already exists."""
        out = self.output_dir(pool)
        marker = out / "stage.json"
        if marker.exists():
            info = json.loads(marker.read_text())
            return {**info, "cached": True, "path": str(out)}
        start = time.perf_counter()
        progress = progress or (lambda done, total: None)
        progress(0, pool.n_records)  # started: a model load or a fit may come before the first count
        with atomic_path(out, directory=True, overwrite=False) as tmp:
            stats = self.compute(pool, tmp, progress)
            seconds = time.perf_counter() - start
            info = {
                "config": self.config(pool),
                "n_records": pool.n_records,
                "seconds": round(seconds, 3),
                "records_per_s": round(pool.n_records / seconds, 1) if seconds > 0 else None,
                **stats,
            }
            write_json(tmp / "stage.json", info)
        return {**info, "cached": False, "path": str(out)}

    @abstractmethod
    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        """Write the artifact files into ``out``; return stats worth reporting."""
