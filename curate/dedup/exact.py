"""Exact dedup: records whose text (optionally case- and whitespace-folded) repeats an earlier one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from curate.dedup.base import Duplicates
from curate.records import hash_prefix_u64
from curate.stages.base import Progress, Stage, StageParams
from curate.tokens import Segments, TextBytes

if TYPE_CHECKING:
    from curate.pool import Pool


class ExactDedupParams(StageParams):
    normalize: Literal["none", "whitespace", "lower_whitespace"] = Field(
        "lower_whitespace",
        description="none = byte-identical texts; whitespace = runs of whitespace folded and ends stripped; "
        "lower_whitespace = also lowercased.",
    )


def text_keys(texts, normalize: str) -> np.ndarray:
    """A 64-bit key per text after normalisation (the pool's own blake2b hash when there is none)."""
    s = texts.str.replace_all(r"\s+", " ").str.strip_chars()
    if normalize == "lower_whitespace":
        s = s.str.to_lowercase()
    view = TextBytes(s)
    whole = Segments(view.offsets[:-1], view.offsets[1:] - view.TERMINATOR, np.arange(view.n), view.n)
    return view.hashes(whole)


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """Per row, the row id of the first row with its key, −1 for that first row itself."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    owner = first[inverse].astype(np.int64)
    rows = np.arange(len(keys), dtype=np.int64)
    return np.where(owner == rows, -1, owner)


class ExactDedupStage(Stage):
    name = "exact-dedup"
    params: ExactDedupParams

    def compute(self, pool: Pool, out: Path, progress: Progress) -> dict:
        if self.params.normalize == "none":
            keys = hash_prefix_u64(pool.column("text_hash"))
        else:
            keys = np.concatenate(
                [text_keys(batch, self.params.normalize) for batch in pool.iter_column("text")]
                or [np.zeros(0, np.uint64)]
            )
        duplicate_of = first_occurrence(keys)
        progress(pool.n_records, pool.n_records)
        np.save(out / "duplicate_of.npy", duplicate_of)
        return {"removed": int((duplicate_of >= 0).sum())}


def exact_duplicates(
    pool: Pool, params: ExactDedupParams, progress: Progress | None = None
) -> tuple[Duplicates, dict]:
    info = ExactDedupStage(params).run(pool, progress)
    duplicate_of = np.load(Path(info["path"]) / "duplicate_of.npy")
    similarity = np.where(duplicate_of >= 0, 1.0, np.nan)
    return Duplicates(duplicate_of, similarity), {}
