"""What a targeted selector aims at: another pool, or a file of texts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from curate import catalog
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

    def iter_labelled(self, field: str, batch_rows: int = 50_000) -> Iterator[tuple[pl.Series, pl.Series]]:
        """(texts, labels) batches, for selectors that treat each label as a target of its own: a
        target pool's domain column, or a field of the target file (every record must have one)."""
        if self.pool is not None:
            if field != "domain" or not self.pool.has_domain:
                raise InputError(
                    f"a target pool is split by its domain column; pool '{self.pool.name}' "
                    + ("has none" if not self.pool.has_domain else f"has no field '{field}'"),
                    field="target_field",
                )
            for batch in self.pool.iter_batches(["text", "domain"], batch_rows):
                yield batch["text"], batch["domain"].fill_null("")
            return
        for chunk in read_chunks(self.path, chunk_rows=batch_rows, text_field=self.text_field):
            frame = chunk.frame
            if field not in frame.columns:
                raise InputError(f"target records need a '{field}' field to separate targets", file=str(self.path),
                                 field=field)  # fmt: skip
            texts = _texts_of(frame, self.path, self.text_field)
            keep = frame[self.text_field].is_not_null()
            labels = frame[field].cast(pl.String).filter(keep)
            if labels.null_count():
                line = int(chunk.lines[np.flatnonzero(keep.to_numpy())[labels.is_null().arg_true()[0]]])
                raise InputError("target record without a label", file=str(self.path), line=line, field=field)
            yield texts, labels

    def ref(self) -> dict:
        ref = {"kind": self.kind, "fingerprint": self.fingerprint, "n_records": self.n_records}
        if self.pool is not None:
            ref["id"] = self.pool.id
        return ref


def _texts_of(frame: pl.DataFrame, path: Path | None, field: str) -> pl.Series:
    if field not in frame.columns or frame[field].dtype != pl.String:
        raise InputError("target file needs a string text field", file=str(path), field=field)
    return frame[field].drop_nulls()


def locate_target(settings: Settings, spec: str | None, check_path: Callable[[str], Path] | None = None) -> str | None:
    """The one precedence rule of every caller (CLI, pipelines, REST): an ingested pool, by name or id,
    wins; anything else must be an existing file. Returns the pool id or the resolved file path.

    ``check_path`` vets and resolves a file path first: the server passes one that admits only files
    inside its allowed roots.
    """
    if not spec:
        return None
    try:
        return catalog.get_pool(settings, spec).id
    except NotFoundError:
        pass
    path = check_path(spec) if check_path else Path(spec).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"target '{spec}' is neither a pool nor a file", field="target")
    return str(path)


def resolve_target(
    settings: Settings, spec: str | None, text_field: str = "text", check_path: Callable[[str], Path] | None = None
) -> Target | None:
    """The target ``spec`` names (see ``locate_target``), read: a pool, or a file of texts."""
    located = locate_target(settings, spec, check_path)
    if located is None:
        return None
    path = Path(located)
    if not path.is_absolute():  # a pool id
        pool = Pool.load(settings, located)
        return Target("pool", pool.fingerprint, pool.n_records, pool=pool)
    fp, n = Fingerprint(), 0
    for chunk in read_chunks(path, text_field=text_field):
        texts = _texts_of(chunk.frame, path, text_field)
        ids = pl.repeat("", len(texts), dtype=pl.String, eager=True)  # a target is its texts, in order
        fp.update(pl.DataFrame({"id": ids, "text": texts}))
        n += len(texts)
    if n == 0:
        raise InputError("target file has no texts", file=str(path))
    return Target("texts", fp.hexdigest(), n, path=path, text_field=text_field)
