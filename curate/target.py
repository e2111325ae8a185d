"""What a targeted selector aims at: another pool, or a file of texts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate.config import Settings
from curate.errors import InputError, NotFoundError
from curate.io import read_chunks
from curate.pool import Pool
from curate.records import Fingerprint


@dataclass
class Target:
    kind: str  # "pool" | "texts"
    fingerprint: str
    n_records: int
    pool: Pool | None = None
    path: Path | None = None
    text_field: str = "text"

    def iter_texts(self, batch_rows: int = 50_000) -> Iterator[pl.Series]:
        if self.pool is not None:
            yield from self.pool.iter_column("text", batch_rows)
            return
        for chunk in read_chunks(self.path, chunk_rows=batch_rows, text_field=self.text_field):
            yield _texts_of(chunk.frame, self.path, self.text_field)

    def ref(self) -> dict:
        ref = {"kind": self.kind, "fingerprint": self.fingerprint, "n_records": self.n_records}
        if self.pool is not None:
            ref["id"] = self.pool.id
        return ref


def _texts_of(frame: pl.DataFrame, path: Path | None, field: str) -> pl.Series:
    if field not in frame.columns or frame[field].dtype != pl.String:
        raise InputError("target file needs a string text field", file=str(path), field=field)
    return frame[field].drop_nulls()


def resolve_target(settings: Settings, spec: str | None, text_field: str = "text") -> Target | None:
    """A path to an existing file is a texts target; otherwise the name of an ingested pool."""
    if not spec:
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        fp, n = Fingerprint(), 0
        for chunk in read_chunks(path, text_field=text_field):
            texts = _texts_of(chunk.frame, path, text_field)
            ids = pl.repeat("", len(texts), dtype=pl.String, eager=True)  # a target is its texts, in order
            fp.update(pl.DataFrame({"id": ids, "text": texts}))
            n += len(texts)
        if n == 0:
            raise InputError("target file has no texts", file=str(path))
        return Target("texts", fp.hexdigest(), n, path=path.resolve(), text_field=text_field)
    try:
        pool = Pool.load(settings, spec)
    except NotFoundError:
        raise InputError(f"target '{spec}' is neither a file nor a pool name", field="target") from None
    return Target("pool", pool.fingerprint, pool.n_records, pool=pool)
