"""Read queries of the read model (what the API serves). Newest first unless said otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, func, select

from libs.store.engine import Store
from libs.store.projection import state_of
from libs.store.tables import DetectionRow, EventRow, InstanceRow, KVStatusRow, RecoveryRow, RecoveryStepRow
from libs.topology.view import InstanceState

PAGE_SIZE = 50


async def instance_states(store: Store) -> list[InstanceState]:
    """Every instance not forgotten, as InstanceStates (for the API's in-memory fleet)."""
    async with store.session() as session:
        rows = (await session.exec(select(InstanceRow).where(col(InstanceRow.forgotten_at).is_(None)))).all()
    return [state_of(row) for row in rows]


async def detections(
    store: Store, *, cluster: Sequence[str] = (), page: int = 0, limit: int = PAGE_SIZE
) -> list[DetectionRow]:
    """Detections, newest first; `cluster` filters by cluster name or alias (any of the given)."""
    query = select(DetectionRow)
    if cluster:
        query = query.where(col(DetectionRow.cluster).in_(cluster) | col(DetectionRow.alias).in_(cluster))
    query = query.order_by(col(DetectionRow.id).desc()).offset(page * limit).limit(limit)
    async with store.session() as session:
        return list((await session.exec(query)).all())


async def recoveries(
    store: Store,
    *,
    cluster: Sequence[str] = (),
    uid: str | None = None,
    instance: str | None = None,
    active: bool | None = None,
    acknowledged: bool | None = None,
    include_skipped: bool = False,
    page: int = 0,
    limit: int = PAGE_SIZE,
) -> list[RecoveryRow]:
    """Recoveries, newest first. A gate's refusal (outcome `skipped`: already handled, filtered, ...) is
    a decision, not a recovery: it is left out, as orchestrator's audit-recovery lists only attempts,
    unless asked for (Baton's own routes) or named by uid."""
    query = select(RecoveryRow)
    if not include_skipped and uid is None:
        query = query.where(RecoveryRow.outcome != "skipped")
    if cluster:
        query = query.where(col(RecoveryRow.cluster).in_(cluster) | col(RecoveryRow.alias).in_(cluster))
    if uid is not None:
        query = query.where(RecoveryRow.uid == uid)
    if instance is not None:
        query = query.where(RecoveryRow.instance == instance)
    if active is not None:
        query = query.where(RecoveryRow.active == active)
    if acknowledged is not None:
        query = query.where(RecoveryRow.acknowledged == acknowledged)
    query = query.order_by(col(RecoveryRow.id).desc()).offset(page * limit).limit(limit)
    async with store.session() as session:
        return list((await session.exec(query)).all())


async def recovery_by_id(store: Store, recovery_id: int) -> RecoveryRow | None:
    async with store.session() as session:
        return await session.get(RecoveryRow, recovery_id)


async def recovery_steps(store: Store, uid: str) -> list[RecoveryStepRow]:
    query = select(RecoveryStepRow).where(RecoveryStepRow.uid == uid).order_by(col(RecoveryStepRow.position))
    async with store.session() as session:
        return list((await session.exec(query)).all())


async def events_after(
    store: Store,
    after_id: int,
    *,
    cluster: Sequence[str] = (),
    types: Sequence[str] = (),
    limit: int = 500,
) -> list[EventRow]:
    """Events with id > after_id, oldest first. `types` match exactly or as a prefix ending in `.`
    (`recovery.` matches every recovery event)."""
    query = select(EventRow).where(col(EventRow.id) > after_id)
    if cluster:
        query = query.where(col(EventRow.cluster).in_(cluster))
    query = query.order_by(col(EventRow.id)).limit(limit)
    async with store.session() as session:
        rows = list((await session.exec(query)).all())
    return [r for r in rows if type_matches(r.type, types)]


async def recent_events(
    store: Store, *, cluster: Sequence[str] = (), types: Sequence[str] = (), limit: int = 100
) -> list[EventRow]:
    """The newest events, newest first."""
    query = select(EventRow)
    if cluster:
        query = query.where(col(EventRow.cluster).in_(cluster))
    query = query.order_by(col(EventRow.id).desc()).limit(limit * 4 if types else limit)
    async with store.session() as session:
        rows = list((await session.exec(query)).all())
    return [r for r in rows if type_matches(r.type, types)][:limit]


async def last_event_id(store: Store) -> int:
    async with store.session() as session:
        value = (await session.exec(select(func.max(EventRow.id)))).first()
    return int(value or 0)


async def kv_status(store: Store) -> list[KVStatusRow]:
    query = select(KVStatusRow).order_by(col(KVStatusRow.cluster), col(KVStatusRow.dc))
    async with store.session() as session:
        return list((await session.exec(query)).all())


def type_matches(event_type: str, types: Sequence[str]) -> bool:
    if not types:
        return True
    return any(event_type == t or (t.endswith(".") and event_type.startswith(t)) for t in types)
