"""Online mixing sessions over the catalog: a training job asks for batches and reports losses.

The bandit (:mod:`curate.algorithms.bandit`) is pure; this module gives it a home that survives
restarts and serves several processes at once. Every mutation (``next``, ``feedback``) runs in
one transaction that first locks the session row (``SELECT … FOR UPDATE`` on Postgres,
``BEGIN IMMEDIATE`` on SQLite), so concurrent data-parallel workers are serialised: no record
is handed out twice within a domain's epoch and no update is lost.

Steps: every ``next`` call is one bandit step (``t`` in ε_t), numbered by the server. Feedback
must arrive in step order (a 409 names the expected step); batches may be fetched ahead of the
feedback (data-parallel workers, prefetching), and each step's loss is importance-weighted by
the π its batch was drawn with. Warm-up steps still need their (ignored) feedback, so that the
expected step always advances. A step whose worker died is skipped once it is older than
``step_timeout_s`` and a later step reports: its batch is spent, its losses are never applied, and a
late report of it is answered (``expired``), not refused, so a merely slow worker does not crash.

Records are drawn per group from a seeded permutation of that group (one per epoch, reshuffled
each epoch). Only ``(group, epoch, position, count)`` is stored per micro-batch, so the records
of any step are recomputable, the catalog stays small, and the permutations can be cached in
memory by any process without coordination.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError
from sqlalchemy import JSON, DateTime, Index, Integer, String, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from curate import catalog
from curate.algorithms.bandit import MixingParams, OnlineMixer
from curate.catalog import Base, utcnow
from curate.config import Settings
from curate.errors import ConflictError, InputError, NotFoundError
from curate.metrics import common_metrics
from curate.pool import Pool
from curate.records import canonical_json, sha256_hex
from curate.selectors.base import Selection
from curate.selectors.stratified import NO_DOMAIN

SELECTOR_REF = {"name": "odm", "version": "1"}
_PERM_STREAM = 1  # SeedSequence stream of the per-group epoch permutations
_SCHEDULE_ROWS = 500  # weight-schedule rows kept in a frozen manifest (the full history is in the catalog)


class MixingSessionRow(Base):
    __tablename__ = "mixing_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pool_id: Mapped[str] = mapped_column(String(32), index=True)
    pool_fingerprint: Mapped[str] = mapped_column(String(64))
    group_by: Mapped[str] = mapped_column(String(16))
    groups: Mapped[list] = mapped_column(JSON)
    params: Mapped[dict] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict] = mapped_column(JSON)  # OnlineMixer.state_dict()
    epochs: Mapped[dict] = mapped_column(JSON)  # {"epoch": [per group], "pos": [per group]}
    issued: Mapped[int] = mapped_column(Integer, default=0)  # last step handed out by next
    applied: Mapped[int] = mapped_column(Integer, default=0)  # last step whose feedback was applied
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MixingStepRow(Base):
    __tablename__ = "mixing_steps"
    # next() looks a retried request up by its id on every call: keep that O(log n) in long runs
    __table_args__ = (Index("ix_mixing_steps_request", "session_id", "request_id"),)
    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    arms: Mapped[list] = mapped_column(JSON)  # [[group, size], ...] per micro-batch
    draws: Mapped[list] = mapped_column(JSON)  # [[group, epoch, pos, count], ...] in serving order
    probs: Mapped[list] = mapped_column(JSON)  # π the batch was drawn with
    losses: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    weights: Mapped[list | None] = mapped_column(JSON, nullable=True)  # π after this step's feedback
    updated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


SessionLike = MixingSessionRow | SimpleNamespace  # ORM rows on reads, Core rows under the lock
StepLike = MixingStepRow | SimpleNamespace


# --- groups and records (pure functions of the immutable pool; cached per process) ---------------


@dataclass(eq=False)
class GroupIndex:
    names: list[str]
    members: list[np.ndarray]  # row ids of each group, ascending
    ids: pl.Series  # record id by row id

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(m) for m in self.members], np.int64)


def _labels(pool: Pool, group_by: str) -> np.ndarray:
    if group_by == "domain":
        if not pool.has_domain:
            raise InputError(f"pool '{pool.name}' has no domain field; use group_by=cluster", field="group_by")
        return pool.column("domain").fill_null(NO_DOMAIN).cast(pl.String).to_numpy()
    if not pool.has_feature("cluster"):
        raise InputError(f"pool '{pool.name}' has no clusters; ingest with --clusters K", field="group_by")
    return np.asarray(pool.clusters()).astype(np.int64).astype(str)


_INDEXES: dict[tuple[str, str, str], GroupIndex] = {}


def group_index(pool: Pool, group_by: str) -> GroupIndex:
    """Row ids per group, sorted by group name; pools are immutable, so cached per process."""
    key = (str(pool.dir), pool.fingerprint, group_by)
    if key not in _INDEXES:
        names, inv = np.unique(_labels(pool, group_by), return_inverse=True)
        order = np.argsort(inv, kind="stable").astype(np.int64)
        members = np.split(order, np.cumsum(np.bincount(inv, minlength=len(names)))[:-1])
        if len(_INDEXES) >= 8:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = GroupIndex([str(n) for n in names], members, pool.column("id").cast(pl.String))
    return _INDEXES[key]


@lru_cache(maxsize=512)
def _permutation(index: GroupIndex, group: int, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _PERM_STREAM, group, epoch]))
    return index.members[group][rng.permutation(len(index.members[group]))]


def _take(index: GroupIndex, seed: int, group: int, epoch: int, pos: int, count: int):
    """``count`` rows of ``group`` from stream position (epoch, pos); returns draws and the new position."""
    size = len(index.members[group])
    draws = []
    while count > 0:
        n = min(count, size - pos)
        draws.append([group, epoch, pos, n])
        pos, count = pos + n, count - n
        if pos == size:
            epoch, pos = epoch + 1, 0
    return draws, epoch, pos


def _rows_of(index: GroupIndex, seed: int, draws: list) -> np.ndarray:
    parts = [_permutation(index, g, seed, e)[p : p + n] for g, e, p, n in draws]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@lru_cache(maxsize=8)  # a row group holds up to chunk_rows texts: keep few; big pools want with_text=False
def _row_group(path: str, group: int) -> pa.Array:
    return pq.ParquetFile(path).read_row_group(group, columns=["text"]).column("text").combine_chunks()


@lru_cache(maxsize=16)
def _row_group_offsets(path: str) -> np.ndarray:
    meta = pq.ParquetFile(path).metadata
    return np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])


def _texts(pool_dir: str, rows: np.ndarray) -> list[str]:
    """Texts of ``rows`` (row id = position in records.parquet) reading only the row groups touched."""
    path = f"{pool_dir}/records.parquet"
    offsets = _row_group_offsets(path)
    rg = np.searchsorted(offsets, rows, side="right") - 1
    out: list[str] = [""] * len(rows)
    for g in np.unique(rg):
        sel = np.flatnonzero(rg == g)
        values = _row_group(path, int(g)).take(pa.array(rows[sel] - offsets[g])).to_pylist()
        for i, v in zip(sel.tolist(), values, strict=True):
            out[i] = v
    return out


def _init_weights(pool: Pool, index: GroupIndex, params: MixingParams) -> np.ndarray:
    if params.init_weights is not None:
        unknown = sorted(set(params.init_weights) - set(index.names))
        if unknown:
            raise InputError(f"unknown groups in init_weights: {', '.join(unknown)}", field="params.init_weights")
        w = np.array([float(params.init_weights.get(n, 0.0)) for n in index.names])
        if (w < 0).any() or w.sum() <= 0:
            raise InputError("init_weights must be ≥ 0 and not all 0", field="params.init_weights")
        return w / w.sum()
    if params.init == "uniform":
        return np.full(len(index.names), 1.0 / len(index.names))
    if params.init == "records":
        return index.sizes / index.sizes.sum()
    label = np.empty(pool.n_records, np.int64)  # tokens: whitespace tokens per group, streamed
    for g, rows in enumerate(index.members):
        label[rows] = g
    tokens = np.zeros(len(index.names))
    start = 0
    for texts in pool.iter_column("text"):
        counts = texts.str.count_matches(r"\S+").fill_null(0).to_numpy().astype(np.float64)
        tokens += np.bincount(label[start : start + len(counts)], weights=counts, minlength=len(index.names))
        start += len(counts)
    if tokens.sum() <= 0:
        raise InputError(f"pool '{pool.name}' has no tokens to weight by; use init=uniform", field="params.init")
    return tokens / tokens.sum()


# --- transactions ------------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def _engine(settings: Settings) -> Engine:
    """The catalog engine, with the mixing tables created even if the engine predates this import."""
    engine = _ENGINES.get(settings.catalog_url)
    if engine is None:
        engine = catalog.engine_for(settings)
        tables = [MixingSessionRow.__table__, MixingStepRow.__table__]
        try:
            Base.metadata.create_all(engine, tables=tables)
        except Exception:  # another process created them between the check and the CREATE
            Base.metadata.create_all(engine, tables=tables)
        _ENGINES[settings.catalog_url] = engine
    return engine


@contextlib.contextmanager
def _locked(settings: Settings, session_id: str) -> Iterator[tuple[Connection, SimpleNamespace]]:
    """One serialising transaction on the session: row lock on Postgres, BEGIN IMMEDIATE on SQLite.

    Yields the connection and the session row as a plain namespace; the row's mutable fields
    (``state``, ``epochs``, ``issued``, ``applied``) are written back on success. Core statements,
    not the ORM: this runs twice per training step and its overhead is the service's overhead.
    """
    engine = _engine(settings)
    sqlite = engine.dialect.name == "sqlite"
    sessions = MixingSessionRow.__table__
    with engine.connect() as conn:
        try:
            query = select(sessions).where(sessions.c.id == session_id)
            if sqlite:
                # WAL + synchronous=NORMAL: a commit survives a killed process (only power loss can
                # drop the last ones) and skips the per-commit fsync that dominated the call time.
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                query = query.with_for_update()
            found = conn.execute(query).mappings().first()
            if found is None:
                raise NotFoundError(f"no mixing session '{session_id}'", field="session")
            row = SimpleNamespace(**found)
            yield conn, row
            values = {k: getattr(row, k) for k in ("state", "epochs", "issued", "applied")}
            conn.execute(update(sessions).where(sessions.c.id == row.id).values(**values, updated_at=utcnow()))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if sqlite:  # leave the pooled connection as the catalog configured it
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()


def _step_row(conn: Connection, session_id: str, **where) -> SimpleNamespace | None:
    steps = MixingStepRow.__table__
    query = select(steps).where(steps.c.session_id == session_id, *(steps.c[k] == v for k, v in where.items()))
    found = conn.execute(query).mappings().first()
    return SimpleNamespace(**found) if found is not None else None


def _parse_params(raw: dict | None) -> MixingParams:
    try:
        return MixingParams(**(raw or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "params"
        if err["type"] == "extra_forbidden":
            valid = ", ".join(MixingParams.model_fields)
            msg = f"unknown parameter '{name}'; valid parameters: {valid}"
            raise InputError(msg, field=f"params.{name}") from None
        raise InputError(f"invalid value for parameter '{name}': {err['msg']}", field=f"params.{name}") from None


def _weights(names: list[str], probs) -> dict[str, float]:
    return {n: float(p) for n, p in zip(names, probs, strict=True)}


# --- the session API (one function per REST route) ---------------------------------------------


def create_session(
    settings: Settings, *, pool: str, group_by: str = "domain", params: dict | None = None, seed: int = 0
) -> dict:
    """Open a session over ``pool``'s domains or clusters; returns its state (step 0, initial mixture)."""
    if group_by not in ("domain", "cluster"):
        raise InputError(f"group_by must be 'domain' or 'cluster', got '{group_by}'", field="group_by")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}", field="seed")
    resolved = _parse_params(params)
    the_pool = Pool.load(settings, pool)
    index = group_index(the_pool, group_by)
    try:
        init = _init_weights(the_pool, index, resolved)
        mixer = OnlineMixer(len(index.names), resolved.bandit(), init, seed)
    except ValueError as exc:
        raise InputError(str(exc), field="params") from None
    row = MixingSessionRow(
        id=uuid.uuid4().hex,
        pool_id=the_pool.id,
        pool_fingerprint=the_pool.fingerprint,
        group_by=group_by,
        groups=index.names,
        params=resolved.model_dump(mode="json"),
        seed=seed,
        state=mixer.state_dict(),
        epochs={"epoch": [0] * len(index.names), "pos": [0] * len(index.names), "size": index.sizes.tolist()},
        issued=0,
        applied=0,
    )
    _engine(settings)
    with catalog.session(settings) as db:
        db.add(row)
    return _describe(row, [])


_POOLS: dict[tuple[str, str], Pool] = {}


def _session_pool(settings: Settings, row: SessionLike) -> tuple[Pool, GroupIndex]:
    """The session's pool; ids are content-derived, so a process may cache it while its files exist."""
    key = (settings.catalog_url, row.pool_id)
    pool = _POOLS.get(key)
    if pool is None or not pool.records_path.exists():
        pool = _POOLS[key] = Pool.load(settings, row.pool_id)
    if pool.fingerprint != row.pool_fingerprint:
        raise ConflictError(f"pool '{pool.name}' changed since session {row.id} was created", field="pool")
    return pool, group_index(pool, row.group_by)


def _batch_response(row: SessionLike, step: StepLike, index: GroupIndex, pool: Pool, with_text: bool) -> dict:
    rows = _rows_of(index, row.seed, step.draws)
    groups = np.repeat([d[0] for d in step.draws], [d[3] for d in step.draws])
    ids = index.ids.gather(rows).to_list()
    records = [{"id": i, "group": row.groups[g]} for i, g in zip(ids, groups.tolist(), strict=True)]
    if with_text:
        for rec, text in zip(records, _texts(str(pool.dir), rows), strict=True):
            rec["text"] = text
    return {
        "session": row.id,
        "step": step.step,
        "weights": _weights(row.groups, step.probs),
        "micro_batches": [{"group": row.groups[g], "size": n} for g, n in step.arms],
        "records": records,
    }


def next_batch(
    settings: Settings, session_id: str, batch_size: int, *, request_id: str | None = None, with_text: bool = True
) -> dict:
    """Hand out the next step's records; a retried ``request_id`` returns the same step again."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}", field="batch_size")
    with _locked(settings, session_id) as (conn, row):
        pool, index = _session_pool(settings, row)
        if request_id is not None:
            done = _step_row(conn, row.id, request_id=request_id)
            if done is not None:
                return _batch_response(row, done, index, pool, with_text)
        mixer = OnlineMixer.from_state(row.state)
        probs = mixer.probs()
        m = min(MixingParams(**row.params).micro_batches, batch_size)
        arms = mixer.sample(m)
        sizes = np.full(m, batch_size // m)
        sizes[: batch_size % m] += 1
        epoch, pos = list(row.epochs["epoch"]), list(row.epochs["pos"])
        draws: list = []
        for g, n in zip(arms.tolist(), sizes.tolist(), strict=True):
            part, epoch[g], pos[g] = _take(index, row.seed, g, epoch[g], pos[g], n)
            draws += part
        step = SimpleNamespace(
            session_id=row.id, step=row.issued + 1, request_id=request_id,
            arms=[[g, n] for g, n in zip(arms.tolist(), sizes.tolist(), strict=True)],
            draws=draws, probs=probs.tolist(), losses=None, weights=None, updated=None, issued_at=utcnow(),
            expired_at=None,
        )  # fmt: skip
        conn.execute(insert(MixingStepRow.__table__).values(**vars(step)))
        row.issued += 1
        row.state = mixer.state_dict()
        row.epochs = {**row.epochs, "epoch": epoch, "pos": pos}
        return _batch_response(row, step, index, pool, with_text)


def feedback(settings: Settings, session_id: str, step: int, losses: dict[str, float]) -> dict:
    """Apply step ``step``'s per-group losses once; a repeat of the same report is answered, not applied."""
    if not isinstance(losses, dict) or not losses:
        raise InputError("losses must be a non-empty object {group: loss}", field="losses")
    with _locked(settings, session_id) as (conn, row):
        unknown = sorted(set(losses) - set(row.groups))
        if unknown:
            raise InputError(
                f"unknown groups in losses: {', '.join(unknown)}", field="losses", details={"unknown_groups": unknown}
            )
        bad = sorted(g for g, v in losses.items() if not isinstance(v, int | float) or not np.isfinite(v))
        if bad:
            raise InputError(f"losses must be finite numbers; bad: {', '.join(bad)}", field="losses")
        expected = row.applied + 1
        if expected < step <= row.issued:
            expected = _expire_stale(conn, row, step)
        if 1 <= step <= row.applied:
            done = _step_row(conn, row.id, step=step)
            if done.expired_at is not None:
                return _feedback_response(row, done, duplicate=False)
            if done.losses != {g: float(v) for g, v in losses.items()}:
                raise ConflictError(
                    f"step {step} already received different feedback; expected step {expected}",
                    field="step", details={"expected_step": expected},
                )  # fmt: skip
            return _feedback_response(row, done, duplicate=True)
        if step != expected or step > row.issued:
            why = "was never handed out" if step > row.issued else "is out of order"
            timeout = MixingParams(**row.params).step_timeout_s
            wait = f" (skipped if still unreported {timeout:g} s after it was handed out)" if timeout else ""
            raise ConflictError(
                f"step {step} {why}; expected feedback for step {expected}"
                + ("" if expected <= row.issued else " after the next batch")
                + (wait if step <= row.issued else ""),
                field="step",
                details={"expected_step": expected, "issued_step": row.issued},
            )
        current = _step_row(conn, row.id, step=step)
        served = {g for g, _n in current.arms}
        idx = {n: i for i, n in enumerate(row.groups)}
        stray = sorted(g for g in losses if idx[g] not in served)
        if stray:
            raise InputError(
                f"groups not served at step {step}: {', '.join(stray)}",
                field="losses",
                details={"unknown_groups": stray},
            )
        mixer = OnlineMixer.from_state(row.state)
        arms = [idx[g] for g in sorted(losses, key=idx.get)]
        values = [float(losses[row.groups[a]]) for a in arms]
        updated = mixer.observe(step, arms, values, current.probs)
        current.losses = {row.groups[a]: v for a, v in zip(arms, values, strict=True)}
        current.weights = mixer.probs().tolist()
        current.updated = int(updated)
        steps = MixingStepRow.__table__
        conn.execute(
            update(steps)
            .where(steps.c.session_id == row.id, steps.c.step == step)
            .values(losses=current.losses, weights=current.weights, updated=current.updated)
        )
        row.applied = step
        row.state = mixer.state_dict()
        return _feedback_response(row, current, duplicate=False)


def _expire_stale(conn: Connection, row: SimpleNamespace, step: int) -> int:
    """Skip the unreported steps before ``step`` when every one is older than ``step_timeout_s``;
    returns the step now expected. All or none: a younger pending step is a live worker's turn."""
    timeout = MixingParams(**row.params).step_timeout_s
    if timeout is None:
        return row.applied + 1
    steps = MixingStepRow.__table__
    between = (steps.c.session_id == row.id, steps.c.step > row.applied, steps.c.step < step)
    issued = conn.execute(select(steps.c.issued_at).where(*between)).scalars().all()
    cutoff = datetime.now(UTC) - timedelta(seconds=timeout)
    if any(t is None or (t if t.tzinfo else t.replace(tzinfo=UTC)) > cutoff for t in issued):
        return row.applied + 1
    probs = row.state["probs"]  # nothing was learnt from them: π stands as it was
    conn.execute(update(steps).where(*between).values(expired_at=utcnow(), weights=probs, updated=0))
    row.applied = step - 1
    return step


def _feedback_response(row: SessionLike, step: StepLike, duplicate: bool) -> dict:
    return {
        "session": row.id,
        "step": step.step,
        "weights": _weights(row.groups, step.weights),
        "updated": bool(step.updated),
        "duplicate": duplicate,
        "expired": step.expired_at is not None,
        "expected_step": row.applied + 1,
    }


def _get_row(settings: Settings, session_id: str) -> MixingSessionRow:
    _engine(settings)
    with catalog.session(settings) as db:
        row = db.get(MixingSessionRow, session_id)
        if row is None:
            raise NotFoundError(f"no mixing session '{session_id}'", field="session")
        return row


def _steps(settings: Settings, session_id: str, since: int = 0, limit: int | None = None) -> list[MixingStepRow]:
    query = select(MixingStepRow).where(MixingStepRow.session_id == session_id, MixingStepRow.step > since)
    query = query.order_by(MixingStepRow.step)
    if limit is not None:
        query = query.limit(limit)
    _engine(settings)
    with catalog.session(settings) as db:
        return list(db.scalars(query))


def get_session(settings: Settings, session_id: str, *, since: int | None = None, limit: int = 1000) -> dict:
    """State plus the weight history: the ``limit`` steps after ``since``, or the latest ``limit``."""
    row = _get_row(settings, session_id)
    if since is None:
        since = max(0, row.issued - limit)
    return _describe(row, _steps(settings, session_id, since, limit))


def _describe(row: SessionLike, steps: list[MixingStepRow]) -> dict:
    state, ep = row.state, row.epochs
    return {
        "id": row.id,
        "pool": row.pool_id,
        "pool_fingerprint": row.pool_fingerprint,
        "group_by": row.group_by,
        "groups": row.groups,
        "params": row.params,
        "seed": row.seed,
        "step": row.issued,
        "applied_step": row.applied,
        "expected_step": row.applied + 1,
        "weights": _weights(row.groups, state["probs"]),
        "estimates": _weights(row.groups, state["estimates"]),
        "epsilon": state["eps"],
        "updates": state["updates"],
        "epochs": {
            n: {"epoch": e, "position": p, "size": z}
            for n, e, p, z in zip(row.groups, ep["epoch"], ep["pos"], ep["size"], strict=True)
        },
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "history": [
            {
                "step": s.step,
                "micro_batches": [{"group": row.groups[g], "size": n} for g, n in s.arms],
                "sampling_weights": _weights(row.groups, s.probs),
                "losses": s.losses,
                "weights": _weights(row.groups, s.weights) if s.weights is not None else None,
                "updated": None if s.updated is None else bool(s.updated),
                "expired": s.expired_at is not None,
            }
            for s in steps
        ],
    }


def freeze(settings: Settings, session_id: str) -> dict:
    """Write the records served so far as a manifest v1, weighted by the current mixture.

    Each group's mass is its current probability split evenly over its served records; the id
    hashes the session inputs and a digest of its whole step history, so the same session run
    (same seed, same feedback) always freezes to the same manifest.
    """
    row = _get_row(settings, session_id)
    pool, index = _session_pool(settings, row)
    steps = _steps(settings, session_id)
    probs = np.asarray(row.state["probs"])
    served = _rows_of(index, row.seed, [d for s in steps for d in s.draws])
    uniq, first = np.unique(served, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    label = np.empty(pool.n_records, np.int64)
    for g, members in enumerate(index.members):
        label[members] = g
    per_group = np.bincount(label[order], minlength=len(index.names))
    weights = probs[label[order]] / np.maximum(per_group[label[order]], 1)
    history = [[s.step, s.draws, s.losses] for s in steps]
    params = {
        **row.params,
        "group_by": row.group_by,
        "steps_issued": row.issued,
        "steps_applied": row.applied,
        "history_sha256": sha256_hex(canonical_json(history)),
    }
    mixture = {n: float(p) for n, p in zip(index.names, probs, strict=True)}
    selection = Selection(indices=order.astype(np.int64), weights=weights if len(order) else None, mixture=mixture)
    metrics = {
        **common_metrics(pool, order, False),
        "variant": row.params["variant"],
        "records_served": int(len(served)),
        "unique_records": int(len(order)),
        "updates": row.state["updates"],
        "epochs": dict(zip(index.names, row.epochs["epoch"], strict=True)),
        "mixture_time_average": _time_average(index.names, steps),
        "weight_schedule": _schedule(index.names, steps),
    }
    from curate.manifest import write_manifest  # manifest imports selectors; keep this module light

    doc, _ = write_manifest(
        settings,
        pool=pool,
        selector=dict(SELECTOR_REF),
        params=params,
        budget={"requested": int(len(order)), "selected": int(len(order))},
        seed=row.seed,
        target=None,
        selection=selection,
        metrics=metrics,
        lineage={"mixing_session": row.id},
    )
    return doc


def _time_average(names: list[str], steps: list[MixingStepRow]) -> dict[str, float] | None:
    if not steps:
        return None
    return _weights(names, np.mean([s.probs for s in steps], axis=0))


def _schedule(names: list[str], steps: list[MixingStepRow]) -> dict:
    fed = [s for s in steps if s.weights is not None]
    if len(fed) > _SCHEDULE_ROWS:
        keep = np.unique(np.linspace(0, len(fed) - 1, _SCHEDULE_ROWS).round().astype(int))
        fed = [fed[i] for i in keep]
    weights = [[round(w, 8) for w in s.weights] for s in fed]
    return {"groups": names, "steps": [s.step for s in fed], "weights": weights}
