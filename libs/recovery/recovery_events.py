"""Recovery events on `baton.recovery.<cluster-token>.<phase>` (stream BATON_RECOVERIES).

Phases: `registered`, `skipped`, `resumed`, `planned`, `step`, `completed`, `failed`, `fenced` (a
returning old master made read-only, one per fencing), `fence-ended` (its watch ended, `old_master.py`),
and `acknowledged` (data = `RecoveryAcknowledged`: uid, by, comment, at; published by `AckPublisher`). Every
event is an `Event` with `source="recovery"`, the acting epoch, the cluster and the failed instance;
`data` holds the whole record (`record`: RecoveryRecord as JSON, `orchestrator`: its audit-recovery
shape, `timings`) except `step` events, which carry the step only. Message ids are deterministic
(uid, phase, step, epoch), so a retried publish is stored once.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from nats.js import JetStreamContext

from libs.bus.messages import publish_event
from libs.bus.subjects import recovery_subject
from libs.errors import BusError
from libs.models.events import Event
from libs.models.operator import RecoveryAcknowledged
from libs.recovery.audit import RecoveryRecord, StepRecord

log = logging.getLogger(__name__)

SOURCE = "recovery"


def record_data(record: RecoveryRecord) -> dict[str, Any]:
    return {
        "record": record.model_dump(mode="json"),
        "orchestrator": record.to_orchestrator(),
        "timings": record.timings(),
    }


def recovery_event(record: RecoveryRecord, phase: str, step: StepRecord | None = None) -> Event:
    if step is not None:
        data: dict[str, Any] = {"uid": record.uid, "step": step.model_dump(mode="json")}
    else:
        data = record_data(record)
    return Event(
        type=f"recovery.{phase}",
        cluster=record.cluster,
        instance=str(record.failed),
        source=SOURCE,
        node=record.node or Event.model_fields["node"].default,
        epoch=record.epoch,
        data=data,
    )


def message_id(record: RecoveryRecord, phase: str, step: StepRecord | None = None) -> str:
    tail = f"{step.name}:{step.outcome}" if step is not None else str(len(record.steps))
    if phase in ("fenced", "fence-ended"):  # one per fencing of a returning old master, not per record
        tail = f"{len(record.errors)}:{record.fenced_at.isoformat() if record.fenced_at else ''}"
    return f"recovery:{record.uid}:{phase}:{record.epoch}:{tail}"


def acknowledged_event(
    cluster: str, instance: str | None, ack: RecoveryAcknowledged, epoch: int | None, node: str | None = None
) -> Event:
    return Event(
        type="recovery.acknowledged",
        cluster=cluster,
        instance=instance,
        source=SOURCE,
        node=node or Event.model_fields["node"].default,
        epoch=epoch,
        data=ack.model_dump(mode="json"),
    )


class AckPublisher(Protocol):
    async def __call__(
        self, cluster: str, instance: str | None, ack: RecoveryAcknowledged, epoch: int | None
    ) -> None: ...


class EventSink(Protocol):
    async def __call__(self, record: RecoveryRecord, phase: str, step: StepRecord | None = None) -> None: ...


class NatsEventSink:
    """Publishes to JetStream. A failed publish is logged, not raised: the KV record is the truth and
    the audit must not stop a failover half-way."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def __call__(self, record: RecoveryRecord, phase: str, step: StepRecord | None = None) -> None:
        event = recovery_event(record, phase, step)
        try:
            await publish_event(
                self.js,
                recovery_subject(record.cluster, phase),
                event,
                msg_id=message_id(record, phase, step),
            )
        except BusError as exc:
            log.warning("recovery %s: could not publish %s event: %s", record.uid, phase, exc)


class NatsAckPublisher:
    """`recovery.acknowledged` on `baton.recovery.<cluster>.acknowledged`; one message per (uid, time)."""

    def __init__(self, js: JetStreamContext, node: str | None = None) -> None:
        self.js, self.node = js, node

    async def __call__(
        self, cluster: str, instance: str | None, ack: RecoveryAcknowledged, epoch: int | None
    ) -> None:
        event = acknowledged_event(cluster, instance, ack, epoch, self.node)
        try:
            await publish_event(
                self.js,
                recovery_subject(cluster, "acknowledged"),
                event,
                msg_id=f"recovery:{ack.uid}:acknowledged:{ack.at.isoformat()}",
            )
        except BusError as exc:
            log.warning("recovery %s: could not publish its acknowledgement: %s", ack.uid, exc)


class MemoryEventSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.acks: list[Event] = []

    async def acknowledged(
        self, cluster: str, instance: str | None, ack: RecoveryAcknowledged, epoch: int | None
    ) -> None:
        self.acks.append(acknowledged_event(cluster, instance, ack, epoch))

    async def __call__(self, record: RecoveryRecord, phase: str, step: StepRecord | None = None) -> None:
        self.events.append((phase, recovery_event(record, phase, step)))

    @property
    def phases(self) -> list[str]:
        return [p for p, _ in self.events]
