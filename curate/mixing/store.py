"""The session and step tables, and the one serialising transaction every mutation runs in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace

from pydantic import ValidationError
from sqlalchemy import JSON, DateTime, Index, Integer, String, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from curate import catalog
from curate.algorithms.bandit import MixingParams
from curate.catalog import Base, utcnow
from curate.config import Settings
from curate.errors import InputError, NotFoundError


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

_ENGINES: dict[str, Engine] = {}


def catalog_engine(settings: Settings) -> Engine:
    """The catalog engine, with the mixing tables created even if the engine predates this import."""
    engine = _ENGINES.get(settings.catalog_url)
    if engine is None:
        engine = catalog.engine_for(settings)
        catalog.create_tables(engine, [MixingSessionRow.__table__, MixingStepRow.__table__])
        _ENGINES[settings.catalog_url] = engine
    return engine


@contextlib.contextmanager
def locked_session(settings: Settings, session_id: str) -> Iterator[tuple[Connection, SimpleNamespace]]:
    """One serialising transaction on the session: row lock on Postgres, BEGIN IMMEDIATE on SQLite.

    Yields the connection and the session row as a plain namespace; the row's mutable fields
    (``state``, ``epochs``, ``issued``, ``applied``) are written back on success. Core statements,
    not the ORM: this runs twice per training step and its overhead is the service's overhead.
    """
    engine = catalog_engine(settings)
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


def step_row(conn: Connection, session_id: str, **where) -> SimpleNamespace | None:
    steps = MixingStepRow.__table__
    query = select(steps).where(steps.c.session_id == session_id, *(steps.c[k] == v for k, v in where.items()))
    found = conn.execute(query).mappings().first()
    return SimpleNamespace(**found) if found is not None else None


def parse_params(raw: dict | None) -> MixingParams:
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


def named_weights(names: list[str], probs) -> dict[str, float]:
    return {n: float(p) for n, p in zip(names, probs, strict=True)}
