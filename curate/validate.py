"""Per-chunk validation and normalisation of raw records into the pool schema.

State (resolved field names, ids and texts seen so far) is carried across chunks, so duplicate
detection and error locations are exact over the whole file while memory stays per chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curate.errors import InputError
from curate.readers import Chunk
from curate.records import (
    RECORDS_SCHEMA,
    SeenSet,
    generated_ids,
    hash_prefix_u64,
    occurrence_in_chunk,
    text_hashes,
)

if TYPE_CHECKING:
    from curate.ingest import IngestParams


class RecordValidator:
    """Per-chunk validation and normalisation with state carried across chunks."""

    def __init__(self, path: Path, params: IngestParams) -> None:
        self.path, self.p = path, params
        self.id_field: str | None = None
        self.domain_field: str | None = None
        self.resolved = False
        self.ids = SeenSet()
        self.texts = SeenSet()
        self.duplicate_records = 0
        self.dropped_duplicates = 0
        self.dropped_duplicate_ids = 0
        self.rows = 0

    def _err(self, msg: str, line: int | None, field: str | None = None) -> InputError:
        return InputError(msg, file=str(self.path), line=int(line) if line is not None else None, field=field)

    def _resolve_fields(self, frame: pl.DataFrame, line: int) -> None:
        cols = set(frame.columns)
        for attr, default in (("id_field", "id"), ("domain_field", "domain")):
            given = getattr(self.p, attr)
            if given is not None and given not in cols:
                others = ", ".join(sorted(cols - {self.p.text_field})) or "(none)"
                raise self._err(f"field not found; fields present: {others}", line, given)
            setattr(self, attr, given if given is not None else (default if default in cols else None))
        if self.p.embedding_field and self.p.embedding_field not in cols:
            raise self._err("field not found", line, self.p.embedding_field)
        self.resolved = True

    def _first(self, mask: pl.Series | np.ndarray, lines: np.ndarray) -> int:
        return int(lines[int(np.flatnonzero(np.asarray(mask))[0])])

    def process(self, chunk: Chunk) -> tuple[pl.DataFrame, np.ndarray | None]:
        frame, lines = chunk.frame, chunk.lines
        tf = self.p.text_field
        if not self.resolved:
            self._resolve_fields(frame, int(lines[0]))
        if tf not in frame.columns or frame[tf].null_count() == frame.height:
            present = ", ".join(sorted(c for c in frame.columns if c != tf)) or "(none)"
            raise self._err(f"missing in every record; fields present: {present}", lines[0], tf)
        text = frame[tf]
        if text.dtype != pl.String:
            raise self._err(f"text must be a string, got {text.dtype}", lines[0], tf)
        if text.null_count():
            raise self._err("missing or null", self._first(text.is_null(), lines), tf)
        ids = self._ids(frame, lines)
        empty = text.str.strip_chars().str.len_chars() == 0
        if empty.any():
            at = int(np.flatnonzero(empty.to_numpy())[0])
            who = f" (id '{ids[at]}')" if ids is not None else ""
            raise self._err(f"record{who} has empty text", lines[at], tf)
        vectors = self._vectors(frame, lines)
        out = pl.DataFrame({"id": ids, "text": text}) if ids is not None else pl.DataFrame({"text": text})
        out = out.with_columns(self._domain(frame), self._meta(frame))
        keep = np.ones(frame.height, bool)
        if ids is not None:
            keep &= self._check_ids(ids, lines)
        hashes = text_hashes(text)
        out = out.with_columns(hashes)
        keys = hash_prefix_u64(hashes)
        seen_before, _, prior = self.texts.lookup(keys)
        in_chunk = np.zeros(len(keys), np.int64)
        in_chunk[keep] = occurrence_in_chunk(keys[keep])
        dup = keep & (seen_before | (in_chunk > 0))
        self.duplicate_records += int(dup.sum())
        if self.p.drop_duplicates:
            self.dropped_duplicates += int(dup.sum())
            keep &= ~dup
        if ids is None:
            out = out.with_columns(generated_ids(hashes, prior + in_chunk))
        self.texts.add(keys[keep], lines[keep])
        out = out.filter(pl.Series(keep))
        n = out.height
        out = out.with_columns(pl.Series("row_id", np.arange(self.rows, self.rows + n, dtype=np.int64)))
        self.rows += n
        return out.select(RECORDS_SCHEMA.names), (vectors[keep] if vectors is not None else None)

    def _ids(self, frame: pl.DataFrame, lines: np.ndarray) -> pl.Series | None:
        if self.id_field is None:
            return None
        col = frame[self.id_field]
        if col.null_count():
            raise self._err("missing or null", self._first(col.is_null(), lines), self.id_field)
        if col.dtype == pl.String:
            return col.alias("id")
        if col.dtype.is_integer():
            return col.cast(pl.String).alias("id")
        raise self._err(f"id must be a string or an integer, got {col.dtype}", lines[0], self.id_field)

    def _check_ids(self, ids: pl.Series, lines: np.ndarray) -> np.ndarray:
        keys = ids.hash(seed=7).to_numpy().astype(np.uint64)
        seen, first, _ = self.ids.lookup(keys)
        occ = occurrence_in_chunk(keys)
        dup = seen | (occ > 0)
        if dup.any() and self.p.on_duplicate_id == "error":
            at = int(np.flatnonzero(dup)[0])
            first_line = int(first[at]) if seen[at] else int(lines[int(np.flatnonzero(keys == keys[at])[0])])
            raise self._err(
                f"duplicate id '{ids[at]}' (first at line {first_line}); "
                "pass --on-duplicate-id keep-first to keep the first occurrence",
                lines[at],
                self.id_field,
            )
        self.dropped_duplicate_ids += int(dup.sum())
        self.ids.add(keys[~dup], lines[~dup])
        return ~dup

    def _domain(self, frame: pl.DataFrame) -> pl.Series:
        if self.domain_field is None:
            return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("domain")
        col = frame[self.domain_field]
        if not (col.dtype in (pl.String, pl.Categorical, pl.Boolean) or col.dtype.is_numeric()):
            raise self._err(f"domain must be a string or a number, got {col.dtype}", None, self.domain_field)
        col = col.cast(pl.String)
        return pl.when(col.str.len_chars() == 0).then(None).otherwise(col).alias("domain")

    def _meta(self, frame: pl.DataFrame) -> pl.Expr | pl.Series:
        core = {self.p.text_field, self.id_field, self.domain_field, self.p.embedding_field}
        extra = [c for c in frame.columns if c not in core]
        if not extra:
            return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("meta")
        return frame.select(pl.struct(extra).struct.json_encode().alias("meta")).to_series()

    def _vectors(self, frame: pl.DataFrame, lines: np.ndarray) -> np.ndarray | None:
        name = self.p.embedding_field
        if name is None:
            return None
        col = frame[name]
        if not isinstance(col.dtype, pl.List | pl.Array) or not col.dtype.inner.is_numeric():
            raise self._err(f"expected a list of numbers, got {col.dtype}", lines[0], name)
        if col.null_count():
            raise self._err("missing or null", self._first(col.is_null(), lines), name)
        lengths = col.list.len().to_numpy() if isinstance(col.dtype, pl.List) else None
        if lengths is not None and (lengths != lengths[0]).any():
            at = int(np.flatnonzero(lengths != lengths[0])[0])
            raise self._err(f"vector has {lengths[at]} numbers, expected {lengths[0]}", lines[at], name)
        flat = col.explode() if isinstance(col.dtype, pl.List) else col.arr.explode()
        if flat.null_count():
            raise self._err("vector contains null", lines[0], name)
        vecs = flat.cast(pl.Float64).to_numpy().reshape(frame.height, -1)
        norms = np.linalg.norm(vecs, axis=1)
        bad = ~np.isfinite(norms) | (norms == 0)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise self._err("vector is zero or not finite", lines[at], name)
        return (vecs / norms[:, None]).astype(np.float32)
