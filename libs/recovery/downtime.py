"""Downtime for instances a failover lost (`MasterFailoverLostInstancesDowntimeMinutes`).

Value format in KV `baton_downtime`, key `kv_key("host:port")`, written with a per-message TTL equal to
the duration so the entry vanishes when the downtime ends (issue 6 owns begin/end by operators; this is
the same format):
    {"instance": "host:port", "reason": "lost-in-recovery", "owner": "baton-recovery",
     "started_at": ISO-8601, "ends_at": ISO-8601, "epoch": N, "recovery_uid": "..."}
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from libs.bus.connection import bus_errors
from libs.bus.provision import DOWNTIME
from libs.bus.subjects import kv_key
from libs.models import InstanceKey

LOST_IN_RECOVERY = "lost-in-recovery"


class Downtime(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance: str
    reason: str
    owner: str
    started_at: datetime
    ends_at: datetime
    epoch: int | None = None
    recovery_uid: str | None = None


def lost_downtime(
    key: InstanceKey, *, now: datetime, minutes: float, epoch: int, recovery_uid: str
) -> Downtime:
    return Downtime(
        instance=str(key),
        reason=LOST_IN_RECOVERY,
        owner="baton-recovery",
        started_at=now,
        ends_at=now + timedelta(minutes=minutes),
        epoch=epoch,
        recovery_uid=recovery_uid,
    )


class DowntimeWriter(Protocol):
    async def __call__(self, downtime: Downtime) -> None: ...


class KVDowntimeWriter:
    def __init__(self, js: JetStreamContext, bucket: str = DOWNTIME) -> None:
        self.js, self.bucket = js, bucket

    async def __call__(self, downtime: Downtime) -> None:
        ttl = max(1, math.ceil((downtime.ends_at - downtime.started_at).total_seconds()))
        subject = f"$KV.{self.bucket}.{kv_key(downtime.instance)}"
        with bus_errors(f"downtiming {downtime.instance}"):
            await self.js.publish(subject, downtime.model_dump_json().encode(), msg_ttl=ttl)
