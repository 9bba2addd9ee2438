"""Baton's core data models (pydantic, frozen). No I/O here."""

from libs.models.events import Event, MasterRecord, new_event_id, utcnow
from libs.models.instance import (
    DEFAULT_MYSQL_PORT,
    Flavor,
    InstanceKey,
    InstanceSnapshot,
    IOThreadState,
    PromotionRule,
    ReplicationStatus,
    SemiSyncState,
)
from libs.models.probe import ProbeNowReply, ProbeNowRequest

__all__ = [
    "DEFAULT_MYSQL_PORT",
    "Event",
    "Flavor",
    "IOThreadState",
    "InstanceKey",
    "InstanceSnapshot",
    "MasterRecord",
    "ProbeNowReply",
    "ProbeNowRequest",
    "PromotionRule",
    "ReplicationStatus",
    "SemiSyncState",
    "new_event_id",
    "utcnow",
]
