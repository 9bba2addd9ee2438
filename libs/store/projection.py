"""Apply stream messages to the read model: idempotent and resumable.

`apply_batch(store, stream, messages)` runs in one transaction that also advances the stream's cursor
(`baton_cursor`), locked `FOR UPDATE` on MySQL so two projectors sharing a database serialise. A
message whose sequence is not above the cursor is skipped, so replaying a stream from any point — or
re-applying a batch after a crash between commit and ack — changes nothing. Within the rows, every
write is also an upsert by a natural key (instance, detection message id, recovery uid, event id), so
even a reset cursor converges on the same state.

The result says what changed (new events for SSE, instance states for the API's in-memory fleet), and
is only meaningful once the transaction has committed, which `apply_batch` does before returning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.models import Event, InstanceKey, InstanceSnapshot, utcnow
from libs.store import decode
from libs.store.engine import Store, from_db_time, to_db_time
from libs.store.tables import (
    CursorRow,
    DetectionRow,
    EventRow,
    InstanceRow,
    KVStatusRow,
    RecoveryRow,
    RecoveryStepRow,
)
from libs.topology.view import InstanceState, fold

log = logging.getLogger(__name__)

SNAPSHOTS = "BATON_SNAPSHOTS"
DETECTIONS = "BATON_DETECTIONS"
RECOVERIES = "BATON_RECOVERIES"
AUDIT = "BATON_AUDIT"
STREAMS = (SNAPSHOTS, DETECTIONS, RECOVERIES, AUDIT)

FORGOTTEN = "instance.forgotten"  # audit event type: the API forgot an instance
ACKNOWLEDGED = "recovery.acknowledged"
_KV_TYPES = ("kv.published", "kv.failed", "kv.stale")
_time = TypeAdapter(datetime)


@dataclass(frozen=True)
class Message:
    """One stream message: where it sits in its stream, its subject and raw payload."""

    seq: int
    subject: str
    data: bytes


@dataclass
class Applied:
    """What a committed batch changed."""

    cursor: int = 0
    skipped: int = 0  # at or below the cursor (already applied)
    rejected: int = 0  # undecodable payloads (logged, cursor still advances past them)
    events: list[EventRow] = field(default_factory=list)  # new rows, in order (for SSE)
    instances: dict[InstanceKey, InstanceState | None] = field(default_factory=dict)  # None: forgotten


def state_of(row: InstanceRow) -> InstanceState:
    """The InstanceState a row stores."""
    last_probe = InstanceSnapshot.model_validate_json(row.last_probe)
    last_seen = InstanceSnapshot.model_validate_json(row.last_seen) if row.last_seen else None
    return InstanceState(key=last_probe.key, last_probe=last_probe, last_seen=last_seen)


async def get_cursor(store: Store, stream: str) -> int:
    async with store.session() as session:
        row = await session.get(CursorRow, stream)
        return row.seq if row else 0


async def set_cursor(store: Store, stream: str, seq: int) -> None:
    """Force a cursor (e.g. back to 0 when the stream was recreated and the cursor is beyond it)."""
    async with store.session() as session:
        row = await session.get(CursorRow, stream)
        if row is None:
            session.add(CursorRow(stream=stream, seq=seq, updated_at=to_db_time(utcnow())))
        else:
            row.seq, row.updated_at = seq, to_db_time(utcnow())
            session.add(row)
        await session.commit()


async def apply_batch(store: Store, stream: str, messages: Sequence[Message]) -> Applied:
    """Apply `messages` (in stream order) to the read model and advance the cursor, atomically."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    async with store.session() as session:
        query = select(CursorRow).where(CursorRow.stream == stream).with_for_update()
        cursor = (await session.exec(query)).first()
        if cursor is None:
            cursor = CursorRow(stream=stream, seq=0, updated_at=to_db_time(utcnow()))
        applied = Applied(cursor=cursor.seq)
        batch = _Batch(session, applied)
        if stream == SNAPSHOTS:
            keys = {str(k) for k in _snapshot_keys(messages, applied.cursor)}
            await batch.prefetch(keys)
        for msg in messages:
            if msg.seq <= applied.cursor:
                applied.skipped += 1
                continue
            try:
                await batch.apply(stream, msg)
            except ValueError as exc:
                applied.rejected += 1
                log.error("read model: dropping %s #%d on %s: %s", stream, msg.seq, msg.subject, exc)
            applied.cursor = msg.seq
        await batch.flush_instances()
        cursor.seq, cursor.updated_at = applied.cursor, to_db_time(utcnow())
        session.add(cursor)
        await session.commit()
    return applied


def _snapshot_keys(messages: Sequence[Message], cursor: int) -> set[InstanceKey]:
    """The instances a snapshot batch is about, from the subjects (cheap; no payload decoding)."""
    from libs.bus.subjects import parse_snapshot_subject

    keys: set[InstanceKey] = set()
    for msg in messages:
        if msg.seq > cursor:
            try:
                keys.add(parse_snapshot_subject(msg.subject))
            except ValueError:
                continue
    return keys


class _Batch:
    """One transaction's worth of changes; instance rows are folded in memory and written once."""

    def __init__(self, session: AsyncSession, applied: Applied) -> None:
        self.session = session
        self.applied = applied
        self.rows: dict[str, InstanceRow | None] = {}  # None: no row in the database
        self.states: dict[str, InstanceState] = {}  # folded in this batch, written at flush
        self.dirty: set[str] = set()
        self.seen_events: set[str] = set()

    async def apply(self, stream: str, msg: Message) -> None:
        if stream == SNAPSHOTS:
            await self.snapshot(decode.snapshot(msg.data))
        elif stream == DETECTIONS:
            found, event = decode.detection(msg.data)
            await self.detection(found.message_id, found.model_dump_json(), event)
            await self.event(stream, msg, event)
        else:
            event = decode.event(msg.data)
            if stream == RECOVERIES:
                await self.recovery(event)
            elif event.type in _KV_TYPES:
                await self.kv_status(event)
            elif event.type == FORGOTTEN:
                await self.forgotten(event)
            await self.event(stream, msg, event)

    # -- instances ---------------------------------------------------------------------------------
    async def _row(self, key: str) -> InstanceRow | None:
        if key not in self.rows:
            self.rows[key] = await self.session.get(InstanceRow, key)
        return self.rows[key]

    async def prefetch(self, keys: set[str]) -> None:
        """Load the rows of many instances in one query (a snapshot batch touches hundreds)."""
        missing = [k for k in keys if k not in self.rows]
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            found = (
                await self.session.exec(select(InstanceRow).where(col(InstanceRow.key).in_(chunk)))
            ).all()
            by_key = {row.key: row for row in found}
            for key in chunk:
                self.rows[key] = by_key.get(key)

    async def snapshot(self, snap: InstanceSnapshot) -> None:
        key = str(snap.key)
        row = await self._row(key)
        if row is not None and row.forgotten_at is not None:
            if to_db_time(snap.probed_at) <= row.forgotten_at:
                return  # probed before it was forgotten: stay forgotten
            row.forgotten_at = None
            self.dirty.add(key)
        old = self.states.get(key)
        if old is None and row is not None:
            old = state_of(row)
        new = fold(old, snap)
        if old is not None and new is old:
            return  # older than what we hold
        if row is None:
            row = InstanceRow(
                key=key,
                host=snap.key.host,
                port=snap.key.port,
                reachable=False,
                probed_at=to_db_time(snap.probed_at),
                last_probe="",
            )
            self.rows[key] = row
        self.states[key] = new
        self.dirty.add(key)
        self.applied.instances[snap.key] = new

    async def forgotten(self, event: Event) -> None:
        if not event.instance:
            return
        key = str(InstanceKey.parse(event.instance))
        row = await self._row(key)
        if row is None:
            return
        row.forgotten_at = to_db_time(event.time)
        self.dirty.add(key)
        self.applied.instances[InstanceKey.parse(key)] = None

    async def flush_instances(self) -> None:
        """Serialise each changed instance once per batch, however many snapshots it received."""
        for key in self.dirty:
            row = self.rows.get(key)
            if row is None:
                continue
            state = self.states.get(key)
            if state is not None:
                row.reachable = state.last_probe.reachable
                row.probed_at = to_db_time(state.last_probe.probed_at)
                row.last_probe = state.last_probe.model_dump_json()
                if state.last_seen is not None:
                    row.last_seen = state.last_seen.model_dump_json()
                    row.last_seen_at = to_db_time(state.last_seen.probed_at)
            self.session.add(row)

    # -- detections, recoveries, kv ----------------------------------------------------------------
    async def detection(self, message_id: str, payload: str, event: Event) -> None:
        exists = await self.session.exec(select(DetectionRow.id).where(DetectionRow.message_id == message_id))
        if exists.first() is not None:
            return
        data = event.data
        finding = data.get("finding", {})
        self.session.add(
            DetectionRow(
                message_id=message_id,
                incident=str(data.get("incident", "")),
                state=str(data.get("state", "")),
                cluster=str(finding.get("cluster", event.cluster or "")),
                alias=str(finding.get("alias", "")),
                instance=event.instance or "",
                code=str(finding.get("code", "")),
                detected_at=to_db_time(event.time),
                payload=payload,
            )
        )

    async def recovery(self, event: Event) -> None:
        if event.type == ACKNOWLEDGED or event.type.endswith(".acknowledged"):
            await self.acknowledged(event.data)
            return
        record = decode.recovery_record(event)
        if record is None:
            return
        await upsert_recovery(self.session, record)

    async def acknowledged(self, data: dict[str, Any]) -> None:
        uid = data.get("uid")
        if not isinstance(uid, str):
            raise ValueError("recovery.acknowledged without a uid")
        row = (await self.session.exec(select(RecoveryRow).where(RecoveryRow.uid == uid))).first()
        if row is None:
            return
        row.acknowledged = True
        row.acknowledged_by = str(data.get("by", ""))[:255]
        row.acknowledged_comment = str(data.get("comment", ""))
        at = data.get("at")
        row.acknowledged_at = to_db_time(_time.validate_python(at)) if at else to_db_time(utcnow())
        self.session.add(row)

    async def kv_status(self, event: Event) -> None:
        data = event.data
        dc, cluster = str(data.get("dc", "")), str(data.get("cluster", event.cluster or ""))
        if not dc or not cluster:
            raise ValueError(f"{event.type} without dc/cluster")
        row = await self.session.get(KVStatusRow, (dc, cluster))
        at = to_db_time(event.time)
        if row is not None and row.at > at:
            return  # an older event replayed after a newer one
        if row is None:
            row = KVStatusRow(dc=dc, cluster=cluster, outcome=event.type, at=at, event_id=event.id)
        row.alias = str(data.get("alias") or "")
        row.value = str(data.get("value") or "")
        row.epoch = int(data.get("epoch") or event.epoch or 0)
        row.outcome, row.at, row.event_id = event.type, at, event.id
        row.error = data.get("error") or data.get("reason")
        latency = data.get("latency_ms")
        row.latency_ms = float(latency) if isinstance(latency, int | float) else None
        if event.type == "kv.published":
            row.last_success_at = at
        self.session.add(row)

    async def event(self, stream: str, msg: Message, event: Event) -> None:
        if event.id in self.seen_events:
            return
        exists = await self.session.exec(select(EventRow.id).where(EventRow.event_id == event.id))
        if exists.first() is not None:
            return
        self.seen_events.add(event.id)
        row = EventRow(
            event_id=event.id,
            stream=stream,
            stream_seq=msg.seq,
            subject=msg.subject[:1024],
            type=event.type[:64],
            cluster=event.cluster,
            instance=event.instance,
            time=to_db_time(event.time),
            payload=event.model_dump_json(),
        )
        self.session.add(row)
        await self.session.flush()  # assigns row.id, the SSE id
        self.applied.events.append(row)


def _key_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(InstanceKey.model_validate(value))
    return str(value or "")


async def upsert_recovery(session: AsyncSession, record: dict[str, Any]) -> None:
    """Write a recovery record (JSON dict of `RecoveryRecord`) and its steps. A record never goes
    back: an update with fewer steps than stored, or an open record after a closed one, is ignored."""
    uid = str(record["uid"])
    outcome = str(record.get("outcome", "running"))
    steps = list(record.get("steps") or [])
    row = (await session.exec(select(RecoveryRow).where(RecoveryRow.uid == uid))).first()
    if row is not None:
        stored_steps = len(decode_json_list(row.payload, "steps"))
        if (not row.active and outcome == "running") or len(steps) < stored_steps:
            return
    started = _time.validate_python(record.get("started_at"))
    ended_raw = record.get("ended_at")
    ended = _time.validate_python(ended_raw) if ended_raw else None
    payload = json.dumps(record, separators=(",", ":"), default=str)
    if row is None:
        row = RecoveryRow(
            uid=uid,
            cluster="",
            alias="",
            instance="",
            code="",
            outcome=outcome,
            active=True,
            successful=False,
            started_at=to_db_time(started),
            payload=payload,
        )
    row.cluster = str(record.get("cluster", ""))[:255]
    row.alias = str(record.get("alias") or row.cluster)[:255]
    row.instance = _key_text(record.get("failed"))[:255]
    row.code = str(record.get("code", ""))[:255]
    row.outcome = outcome
    row.active = outcome == "running"
    row.successful = outcome == "succeeded"
    row.started_at = to_db_time(started)
    row.ended_at = to_db_time(ended) if ended else None
    row.payload = payload
    if record.get("acknowledged"):
        row.acknowledged = True
        row.acknowledged_by = str(record.get("acknowledged_by", ""))[:255]
        row.acknowledged_comment = str(record.get("acknowledged_comment", ""))
        ack_at = record.get("acknowledged_at")
        row.acknowledged_at = to_db_time(_time.validate_python(ack_at)) if ack_at else None
    session.add(row)
    await session.exec(delete(RecoveryStepRow).where(col(RecoveryStepRow.uid) == uid))  # type: ignore[call-overload]
    for position, step in enumerate(steps, start=1):
        step_end = step.get("ended_at")
        session.add(
            RecoveryStepRow(
                uid=uid,
                position=position,
                name=str(step.get("name", ""))[:255],
                outcome=str(step.get("outcome", ""))[:64],
                epoch=int(step.get("epoch") or 0),
                started_at=to_db_time(_time.validate_python(step.get("started_at"))),
                ended_at=to_db_time(_time.validate_python(step_end)) if step_end else None,
                detail=str(step.get("detail") or ""),
                error=step.get("error"),
            )
        )


def decode_json_list(payload: str, name: str) -> list[Any]:
    try:
        value = json.loads(payload).get(name)
    except (ValueError, AttributeError):
        return []
    return list(value) if isinstance(value, list) else []


__all__ = [
    "AUDIT",
    "DETECTIONS",
    "RECOVERIES",
    "SNAPSHOTS",
    "STREAMS",
    "Applied",
    "Message",
    "apply_batch",
    "from_db_time",
    "get_cursor",
    "set_cursor",
    "state_of",
]
