"""What a targeted selector aims at: another pool, or a file of texts.

A manifest keeps a copy of its target (``target/texts.parquet``: text and domain, and
``target/embeddings.npy`` when the selection embedded it), so a report or an audit finds the
target again after the file moved or the pool was replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curate import catalog
from curate.config import Settings
from curate.errors import InputError, NotFoundError
from curate.io import read_chunks
from curate.pool import Pool
from curate.records import Fingerprint

COPY_TEXTS = "target/texts.parquet"
COPY_EMBEDDINGS = "target/embeddings.npy"
_COPY_SCHEMA = pa.schema([("text", pa.string()), ("domain", pa.string())])


@dataclass
class Target:
    kind: str  # "pool" | "texts"
    fingerprint: str
    n_records: int
    pool: Pool | None = None
    path: Path | None = None
    text_field: str = "text"
    domain_field: str | None = None  # the target's own domain labels, when it has them
    source: dict | None = None  # where it came from: {"pool", "name"} or {"path"}
    _embeddings: dict = field(default_factory=dict, repr=False)  # embedding space key -> vectors

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
            ref["features"] = self.pool.feature_refs()  # a target pool's own embeddings are an input
        if self.source:
            ref["source"] = self.source
        ref["domain_field"] = self.domain_field
        return ref

    def iter_domains(self, batch_rows: int = 50_000) -> Iterator[pl.Series]:
        """The target's own domain label per text (in ``iter_texts`` order); nothing without one."""
        if self.domain_field is None:
            return
        if self.pool is not None:
            for batch in self.pool.iter_batches(["domain"], batch_rows):
                yield batch["domain"]
            return
        for chunk in read_chunks(self.path, chunk_rows=batch_rows, text_field=self.text_field):
            frame = chunk.frame
            keep = frame[self.text_field].is_not_null()
            if self.domain_field not in frame.columns:
                yield _nulls(int(keep.sum()))
                continue
            yield frame[self.domain_field].cast(pl.String).filter(keep)

    def domains(self) -> pl.Series | None:
        batches = list(self.iter_domains())
        return pl.concat(batches) if batches else None

    # --- embeddings in a pool's space ------------------------------------------------------

    def embeddings(self, pool: Pool) -> np.ndarray:
        """Target vectors in ``pool``'s embedding space: a target pool's own embeddings when it has
        them, else its texts encoded with the model that embedded ``pool`` (once per Target)."""
        key = _space(pool)
        if key not in self._embeddings:
            self._embeddings[key] = self._embed(pool)
        return self._embeddings[key]

    def cached_embeddings(self, pool: Pool) -> np.ndarray | None:
        """The vectors already computed for ``pool``'s space (by a selector), without computing any."""
        return self._embeddings.get(_space(pool)) if pool.has_feature("embed") else None

    def _embed(self, pool: Pool) -> np.ndarray:
        from curate.stages.embed import EmbedParams, encode, feature_params, same_space

        if self.pool is not None and self.pool.has_feature("embed"):
            theirs = feature_params(self.pool.feature_path("embed"))
            try:
                params = _pool_embed_params(pool)
            except InputError:  # brought-in vectors: a target pool's own are taken as the same kind
                params = None
            if params is None or theirs is None or same_space(params, theirs):  # else: re-encode its texts
                return np.asarray(self.pool.embeddings(), np.float32)
        params = _pool_embed_params(pool)
        texts = [t for batch in self.iter_texts() for t in batch.to_list()]
        if not texts:
            raise InputError("the target has no texts", field="target")
        return encode(texts, params or EmbedParams())

    # --- the copy kept in a manifest --------------------------------------------------------

    def write_copy(self, folder: Path, pool: Pool) -> dict:
        """Write the target's texts (and domains, and the vectors a selector computed) under
        ``folder``; returns the entries the manifest's target ref gains, and the files written."""
        out = folder / COPY_TEXTS
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        domains = self.iter_domains()
        with pq.ParquetWriter(out, _COPY_SCHEMA, compression="zstd") as writer:
            for texts in self.iter_texts():
                labels = next(domains) if self.domain_field is not None else _nulls(len(texts))
                frame = pl.DataFrame({"text": texts, "domain": labels.cast(pl.String)})
                writer.write_table(frame.to_arrow().cast(_COPY_SCHEMA))
                rows += len(texts)
        copied = {"copy": {"texts": COPY_TEXTS}, "files": [(COPY_TEXTS, rows)]}
        vectors = self.cached_embeddings(pool)
        if vectors is not None:
            np.save(folder / COPY_EMBEDDINGS, np.ascontiguousarray(vectors, np.float32))
            copied["copy"]["embeddings"] = COPY_EMBEDDINGS
            copied["copy"]["embeddings_space"] = _space(pool)
            copied["files"].append((COPY_EMBEDDINGS, len(vectors)))
        return copied

    @classmethod
    def from_copy(cls, folder: Path, ref: dict, pool: Pool | None = None) -> Target | None:
        """The target a manifest kept (None when it kept none: written before issue 16)."""
        copy = ref.get("copy") or {}
        if not copy.get("texts") or not (folder / copy["texts"]).is_file():
            return None
        path = folder / copy["texts"]
        has_domain = ref.get("domain_field") is not None
        target = cls(ref["kind"], ref["fingerprint"], ref["n_records"], path=path,
                     domain_field="domain" if has_domain else None, source=ref.get("source"))  # fmt: skip
        if copy.get("embeddings") and (folder / copy["embeddings"]).is_file():
            target._embeddings[copy["embeddings_space"]] = np.load(folder / copy["embeddings"])
        return target


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
    settings: Settings,
    spec: str | None,
    text_field: str = "text",
    check_path: Callable[[str], Path] | None = None,
    domain_fields: tuple[str, ...] = ("domain",),
) -> Target | None:
    """The target ``spec`` names (see ``locate_target``), read: a pool, or a file of texts.

    A texts file's own labels come from the first of ``domain_fields`` it has (callers put the
    pool's domain field first, so a target shaped like the pool is labelled like it)."""
    located = locate_target(settings, spec, check_path)
    if located is None:
        return None
    path = Path(located)
    if not path.is_absolute():  # a pool id
        pool = Pool.load(settings, located)
        return Target("pool", pool.fingerprint, pool.n_records, pool=pool,
                      domain_field="domain" if pool.has_domain else None,
                      source={"pool": pool.id, "name": pool.name})  # fmt: skip
    fp, n, domain_field = Fingerprint(), 0, None
    for chunk in read_chunks(path, text_field=text_field):
        texts = _texts_of(chunk.frame, path, text_field)
        if n == 0:
            domain_field = next((f for f in domain_fields if f and f in chunk.frame.columns), None)
        ids = pl.repeat("", len(texts), dtype=pl.String, eager=True)  # a target is its texts, in order
        fp.update(pl.DataFrame({"id": ids, "text": texts}))
        n += len(texts)
    if n == 0:
        raise InputError("target file has no texts", file=str(path))
    return Target("texts", fp.hexdigest(), n, path=path, text_field=text_field, domain_field=domain_field,
                  source={"path": str(path)})  # fmt: skip


def _nulls(n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True)


def _space(pool: Pool) -> str:
    """Which embedding space ``pool``'s vectors live in (its embed feature's content-keyed folder)."""
    path = pool.feature_path("embed")
    return path.name if path is not None else ""


def _pool_embed_params(pool: Pool):
    """How ``pool``'s embed stage encoded (model, backend, truncation), so target texts are encoded
    alike; an error for bring-your-own vectors, None when the stage record does not say."""
    from curate.stages.embed import feature_params

    path = pool.feature_path("embed")
    try:
        model = json.loads((path / "stage.json").read_text()).get("model")
    except (OSError, TypeError, ValueError):
        return None
    if not model or str(model).startswith("field:"):
        raise InputError(
            "the pool's vectors were not made by a model, so target texts cannot be embedded alike: "
            "give as target a pool ingested with the same vectors",
            field="target",
        )
    return feature_params(path)
