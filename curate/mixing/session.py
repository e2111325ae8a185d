"""The session API: one function per REST route (create, next, feedback, state)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from curate import catalog
from curate.algorithms.bandit import MixingParams, OnlineMixer
from curate.catalog import utcnow
from curate.config import Settings
from curate.errors import ConflictError, InputError, NotFoundError
from curate.mixing.records import GroupIndex, group_index, init_weights, rows_of, take, texts_of
from curate.mixing.store import (
    MixingSessionRow,
    MixingStepRow,
    SessionLike,
    StepLike,
    catalog_engine,
    locked_session,
    named_weights,
    parse_params,
    step_row,
)
from curate.pool import Pool


def create_session(
    settings: Settings, *, pool: str, group_by: str = "domain", params: dict | None = None, seed: int = 0
) -> dict:
    """Open a session over ``pool``'s domains or clusters; returns its state (step 0, initial mixture)."""
    if group_by not in ("domain", "cluster"):
        raise InputError(f"group_by must be 'domain' or 'cluster', got '{group_by}'", field="group_by")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}", field="seed")
    resolved = parse_params(params)
    the_pool = Pool.load(settings, pool)
    index = group_index(the_pool, group_by)
    try:
        init = init_weights(the_pool, index, resolved)
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
    catalog_engine(settings)
    with catalog.session(settings) as db:
        db.add(row)
    return _describe(row, [])


_POOLS: dict[tuple[str, str], Pool] = {}


def session_pool(settings: Settings, row: SessionLike) -> tuple[Pool, GroupIndex]:
    """The session's pool; ids are content-derived, so a process may cache it while its files exist."""
    key = (settings.catalog_url, row.pool_id)
    pool = _POOLS.get(key)
    if pool is None or not pool.records_path.exists():
        pool = _POOLS[key] = Pool.load(settings, row.pool_id)
    if pool.fingerprint != row.pool_fingerprint:
        raise ConflictError(f"pool '{pool.name}' changed since session {row.id} was created", field="pool")
    return pool, group_index(pool, row.group_by)


def _batch_response(row: SessionLike, step: StepLike, index: GroupIndex, pool: Pool, with_text: bool) -> dict:
    rows = rows_of(index, row.seed, step.draws)
    groups = np.repeat([d[0] for d in step.draws], [d[3] for d in step.draws])
    ids = index.ids.gather(rows).to_list()
    records = [{"id": i, "group": row.groups[g]} for i, g in zip(ids, groups.tolist(), strict=True)]
    if with_text:
        for rec, text in zip(records, texts_of(str(pool.dir), rows), strict=True):
            rec["text"] = text
    return {
        "session": row.id,
        "step": step.step,
        "weights": named_weights(row.groups, step.probs),
        "micro_batches": [{"group": row.groups[g], "size": n} for g, n in step.arms],
        "records": records,
    }


def next_batch(
    settings: Settings, session_id: str, batch_size: int, *, request_id: str | None = None, with_text: bool = True
) -> dict:
    """Hand out the next step's records; a retried ``request_id`` returns the same step again."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}", field="batch_size")
    with locked_session(settings, session_id) as (conn, row):
        pool, index = session_pool(settings, row)
        if request_id is not None:
            done = step_row(conn, row.id, request_id=request_id)
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
            part, epoch[g], pos[g] = take(index, row.seed, g, epoch[g], pos[g], n)
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
    with locked_session(settings, session_id) as (conn, row):
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
            done = step_row(conn, row.id, step=step)
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
        current = step_row(conn, row.id, step=step)
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
        "weights": named_weights(row.groups, step.weights),
        "updated": bool(step.updated),
        "duplicate": duplicate,
        "expired": step.expired_at is not None,
        "expected_step": row.applied + 1,
    }


def get_row(settings: Settings, session_id: str) -> MixingSessionRow:
    catalog_engine(settings)
    with catalog.session(settings) as db:
        row = db.get(MixingSessionRow, session_id)
        if row is None:
            raise NotFoundError(f"no mixing session '{session_id}'", field="session")
        return row


def steps_of(settings: Settings, session_id: str, since: int = 0, limit: int | None = None) -> list[MixingStepRow]:
    query = select(MixingStepRow).where(MixingStepRow.session_id == session_id, MixingStepRow.step > since)
    query = query.order_by(MixingStepRow.step)
    if limit is not None:
        query = query.limit(limit)
    catalog_engine(settings)
    with catalog.session(settings) as db:
        return list(db.scalars(query))


def get_session(settings: Settings, session_id: str, *, since: int | None = None, limit: int = 1000) -> dict:
    """State plus the weight history: the ``limit`` steps after ``since``, or the latest ``limit``."""
    row = get_row(settings, session_id)
    if since is None:
        since = max(0, row.issued - limit)
    return _describe(row, steps_of(settings, session_id, since, limit))


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
        "weights": named_weights(row.groups, state["probs"]),
        "estimates": named_weights(row.groups, state["estimates"]),
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
                "sampling_weights": named_weights(row.groups, s.probs),
                "losses": s.losses,
                "weights": named_weights(row.groups, s.weights) if s.weights is not None else None,
                "updated": None if s.updated is None else bool(s.updated),
                "expired": s.expired_at is not None,
            }
            for s in steps
        ],
    }
