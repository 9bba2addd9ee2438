"""Maintenance locks (orchestrator's `begin-maintenance` / `end-maintenance`), as stored in KV.

Bucket `baton_maintenance`, key `libs.bus.subjects.kv_key("host:port")`, value the JSON of `Maintenance`
(`{"owner", "reason", "begin", "end"}`), written with a per-message TTL that ends with `end`: a lock
nobody ends expires by itself (orchestrator: `MaintenanceExpireMinutes`, 10 minutes by default).

A lock says "an operator is working on this server: do not refactor it". Readers (the API, the recovery
leader's refactoring verbs) decode entries with `decode`, and ask `active(now)`: the TTL may lag, so the
end time is checked too. An entry that cannot be decoded is treated as an *active* lock (fail closed:
refusing an operation is safer than running one on a server someone is working on).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError

from libs.bus.provision import MAINTENANCE
from libs.models import InstanceKey

BUCKET = MAINTENANCE
DEFAULT_DURATION = timedelta(minutes=10)  # orchestrator's MaintenanceExpireMinutes default


class Maintenance(BaseModel):
    """One instance's maintenance lock."""

    model_config = ConfigDict(frozen=True)

    instance: str = ""  # host:port (informative: the key is what counts)
    owner: str
    reason: str
    begin: datetime
    end: datetime
    undecodable: bool = False  # set by `decode` for an entry it could not read (fail closed)

    def active(self, now: datetime) -> bool:
        return self.undecodable or self.begin <= now < self.end


def decode(raw: bytes, key: InstanceKey | None = None) -> Maintenance:
    """A stored lock; an undecodable one is an active lock with no end (see the module doc)."""
    try:
        return Maintenance.model_validate_json(raw)
    except (ValidationError, ValueError):
        epoch = datetime.min.replace(tzinfo=UTC)
        return Maintenance(
            instance=str(key) if key else "",
            owner="?",
            reason="undecodable maintenance entry",
            begin=epoch,
            end=epoch,
            undecodable=True,
        )


def in_maintenance(raw: bytes | None, now: datetime, key: InstanceKey | None = None) -> Maintenance | None:
    """The active lock held in `raw` (a KV value, None when absent), else None. An empty value is absent
    too: it is what nats-py returns for the server's TTL-expiry marker (see kvread), never a lock."""
    if not raw:
        return None
    lock = decode(raw, key)
    return lock if lock.active(now) else None


def refusal(key: InstanceKey, lock: Maintenance) -> str:
    """The sentence an operation refused because of `lock` answers."""
    return f"{key} is under maintenance (owner: {lock.owner}, reason: {lock.reason})"
