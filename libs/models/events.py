"""The event envelope every Baton message carries, and the records other services share.

Every event on `baton.>` is an `Event`: who said what, about which cluster/instance, when, and under
which leader epoch. Its `id` doubles as the JetStream `Nats-Msg-Id`, so a redelivered or duplicated
publish collapses into one stored message, and consumers dedupe by it.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.models.instance import InstanceKey


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return uuid.uuid4().hex


NODE_NAME = socket.gethostname()


class Event(BaseModel):
    """The envelope of DESIGN §3. `data` holds the type-specific payload (a model dumped to JSON)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id)
    type: str  # e.g. "detection", "recovery.started", "kv.published"
    time: datetime = Field(default_factory=utcnow)
    cluster: str | None = None
    instance: str | None = None  # InstanceKey formatted host:port
    source: str  # the service: prober, analyzer, recovery, kvpublisher, api
    node: str = NODE_NAME
    epoch: int | None = None  # the recovery leader's fencing epoch, where a leader acted
    data: dict[str, Any] = Field(default_factory=dict)


class MasterRecord(BaseModel):
    """The value of `baton_masters/<cluster-token>`: who the master of a cluster is, under which epoch.

    Written by the recovery leader: by a recovery, and when it first sees a cluster with a live writable
    master and no record (a seed: create-only, the leader's epoch, no recovery uid); read by the
    kvpublisher, which refuses to replace a newer epoch's value with an older one.
    """

    model_config = ConfigDict(frozen=True)

    cluster: str  # canonical cluster name: the master's host:port at discovery
    alias: str  # DetectClusterAliasQuery result, else the cluster name
    master: InstanceKey
    hostname: str = ""
    ipv4: str = ""
    ipv6: str = ""
    epoch: int = 0
    recovery_uid: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)
