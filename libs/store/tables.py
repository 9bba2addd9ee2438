"""The read model's tables (sqlmodel). Portable between SQLite and MySQL/MariaDB.

Everything here is a *projection* of the JetStream streams: it can be dropped and rebuilt by replaying
them. Payloads are kept whole as JSON text (`payload`) beside the columns the API filters and sorts
on, so a new field in a model never needs a migration to be served.

Times are stored as naive UTC with microseconds (`DATETIME(6)` on MySQL); `libs.store.times` converts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

NAME = 255  # host:port, cluster names, aliases
SHORT = 64


def _text() -> Column[str]:
    return Column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False)


def _text_null() -> Column[str]:
    return Column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=True)


def _time(nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(
        DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=nullable, index=index
    )


class InstanceRow(SQLModel, table=True):
    """The latest probe and the last successful probe of each instance (an `InstanceState`)."""

    __tablename__ = "baton_instance"

    key: str = Field(primary_key=True, max_length=NAME)  # host:port
    host: str = Field(max_length=NAME)
    port: int
    reachable: bool
    probed_at: datetime = Field(sa_column=_time())
    last_seen_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    last_probe: str = Field(sa_column=_text())  # InstanceSnapshot JSON
    last_seen: str | None = Field(default=None, sa_column=_text_null())
    forgotten_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class DetectionRow(SQLModel, table=True):
    """One detection transition (`libs.topology.detection.Detection`): audit-failure-detection."""

    __tablename__ = "baton_detection"
    __table_args__ = (UniqueConstraint("message_id", name="uq_detection_message"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=NAME)
    incident: str = Field(max_length=SHORT, index=True)
    state: str = Field(max_length=SHORT)
    cluster: str = Field(max_length=NAME, index=True)
    alias: str = Field(max_length=NAME, index=True)
    instance: str = Field(max_length=NAME)
    code: str = Field(max_length=NAME)
    detected_at: datetime = Field(sa_column=_time(index=True))
    payload: str = Field(sa_column=_text())  # Detection JSON


class RecoveryRow(SQLModel, table=True):
    """The latest state of one recovery (`libs.recovery.audit.RecoveryRecord`): audit-recovery."""

    __tablename__ = "baton_recovery"
    __table_args__ = (UniqueConstraint("uid", name="uq_recovery_uid"),)

    id: int | None = Field(default=None, primary_key=True)  # orchestrator's numeric Id
    uid: str = Field(max_length=SHORT)
    cluster: str = Field(max_length=NAME, index=True)
    alias: str = Field(max_length=NAME, index=True)
    instance: str = Field(max_length=NAME, index=True)
    code: str = Field(max_length=NAME)
    outcome: str = Field(max_length=SHORT)
    active: bool
    successful: bool
    started_at: datetime = Field(sa_column=_time(index=True))
    ended_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    acknowledged: bool = False
    acknowledged_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    acknowledged_by: str = Field(default="", max_length=NAME)
    acknowledged_comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    payload: str = Field(sa_column=_text())  # RecoveryRecord JSON


class RecoveryStepRow(SQLModel, table=True):
    """One step of one recovery, in order (`audit-recovery-steps/:uid`)."""

    __tablename__ = "baton_recovery_step"
    __table_args__ = (UniqueConstraint("uid", "position", name="uq_recovery_step"),)

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=SHORT, index=True)
    position: int
    name: str = Field(max_length=NAME)
    outcome: str = Field(max_length=SHORT)
    epoch: int = 0
    started_at: datetime = Field(sa_column=_time())
    ended_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EventRow(SQLModel, table=True):
    """Every event of the durable streams (detections, recoveries, audit), for the SSE replay.

    `id` is the SSE event id: monotonic in projection order across streams.
    """

    __tablename__ = "baton_event"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_event_id"),
        Index("ix_event_cluster_id", "cluster", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=NAME)
    stream: str = Field(max_length=SHORT)
    stream_seq: int
    subject: str = Field(max_length=1024)
    type: str = Field(max_length=SHORT, index=True)
    cluster: str | None = Field(default=None, max_length=NAME)
    instance: str | None = Field(default=None, max_length=NAME)
    time: datetime = Field(sa_column=_time(index=True))
    payload: str = Field(sa_column=_text())  # the Event JSON (detections wrapped into an Event)


class KVStatusRow(SQLModel, table=True):
    """The last KV publish outcome per data center and cluster (kvpublisher audit events)."""

    __tablename__ = "baton_kv_status"

    dc: str = Field(primary_key=True, max_length=NAME)
    cluster: str = Field(primary_key=True, max_length=NAME)
    alias: str = Field(default="", max_length=NAME)
    value: str = Field(default="", max_length=NAME)
    epoch: int = 0
    outcome: str = Field(max_length=SHORT)  # kv.published | kv.failed | kv.stale
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    latency_ms: float | None = None
    at: datetime = Field(sa_column=_time())
    last_success_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    event_id: str = Field(max_length=NAME)


class CursorRow(SQLModel, table=True):
    """The last stream sequence applied, per stream: the projection resumes after it."""

    __tablename__ = "baton_cursor"

    stream: str = Field(primary_key=True, max_length=SHORT)
    seq: int = 0
    updated_at: datetime = Field(sa_column=_time())


ALL_TABLES = (InstanceRow, DetectionRow, RecoveryRow, RecoveryStepRow, EventRow, KVStatusRow, CursorRow)
