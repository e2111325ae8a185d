"""The catalog: which pools and manifests exist. Artifacts live in files; rows point at them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from curate.config import Settings
from curate.errors import NotFoundError


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Base(DeclarativeBase):
    pass


class PoolRow(Base):
    __tablename__ = "pools"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    n_records: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    info: Mapped[dict] = mapped_column(JSON, default=dict)


class ManifestRow(Base):
    __tablename__ = "manifests"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pool_id: Mapped[str] = mapped_column(String(32), index=True)
    selector: Mapped[str] = mapped_column(String(64), index=True)
    selected: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A unit of background work; workers claim queued rows and report progress into them."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|succeeded|failed|cancelled
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    # sha256 of the canonical params: finds an identical job by index, not by scanning (null on older rows)
    params_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def create_tables(engine: Engine, tables: list[Table] | None = None) -> None:
    """Create missing tables and add missing nullable columns (a catalog written by an older curate).

    Idempotent; an API and its workers may race to create or alter on the same database, so a
    failure is retried against the schema as it now is. The only migration curate needs so far:
    new columns are always nullable, and a missing non-nullable one is refused by name.
    """
    for attempt in range(3):
        try:
            Base.metadata.create_all(engine, tables=tables)
            _add_missing_columns(engine, tables or list(Base.metadata.sorted_tables))
            return
        except DBAPIError:
            if attempt == 2:
                raise


def _add_missing_columns(engine: Engine, tables: list[Table]) -> None:
    found = inspect(engine)
    for table in tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"catalog table {table.name} lacks column {column.name}, which cannot be added to existing "
                    "rows: migrate the catalog or start a new one (CURATE_DATABASE_URL)"
                )
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')


@lru_cache(maxsize=16)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # concurrent readers while a writer works
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")

    else:
        engine = create_engine(url, pool_pre_ping=True)
    create_tables(engine)
    return engine


def engine_for(settings: Settings) -> Engine:
    settings.root.mkdir(parents=True, exist_ok=True)
    return _engine(settings.catalog_url)


@contextmanager
def session(settings: Settings) -> Iterator[Session]:
    with Session(engine_for(settings), expire_on_commit=False) as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


def get_pool(settings: Settings, name_or_id: str) -> PoolRow:
    with session(settings) as db:
        row = db.get(PoolRow, name_or_id) or db.scalar(select(PoolRow).where(PoolRow.name == name_or_id))
        if row is None:
            names = db.scalars(select(PoolRow.name).order_by(PoolRow.name)).all()
            raise NotFoundError(
                f"no pool named '{name_or_id}'; known pools: {', '.join(names) or '(none — run curate ingest)'}"
            )
        return row


def list_pools(settings: Settings) -> list[PoolRow]:
    with session(settings) as db:
        return list(db.scalars(select(PoolRow).order_by(PoolRow.created_at, PoolRow.name)))


def list_manifests(
    settings: Settings, *, pool_id: str | None = None, selector: str | None = None
) -> list[ManifestRow]:
    query = select(ManifestRow).order_by(ManifestRow.created_at, ManifestRow.id)
    if pool_id:
        query = query.where(ManifestRow.pool_id == pool_id)
    if selector:
        query = query.where(ManifestRow.selector == selector)
    with session(settings) as db:
        return list(db.scalars(query))
