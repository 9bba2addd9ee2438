"""The operator's control state the recovery reads and writes in KV: global switch, downtime, blocks.

- `baton_settings/recoveries`: `GlobalRecoveries` (written by the API; absent = enabled).
- `baton_downtime/<kv_key(host:port)>`: `Downtime` (`downtime.py`; written by the API and by
  failovers for lost instances), per-message TTL; readers also check `ends_at`.
- `baton_blocks`: anti-flapping blocks (`Block`), one key per blocked scope:
  `cluster.<kv_key(cluster)>` after a master recovery (RecoveryPeriodBlockSeconds), and
  `instance.<kv_key(host:port)>` after an intermediate-master recovery; per-message TTL = the block
  period, and `blocked_until` is checked too. An acknowledgement deletes the key. The same bucket
  keeps the detections refused for a reason that may pass (`Deferred`, key
  `deferred.<kv_key(host:port)>.<code>`, TTL one hour), so a new leader retries them too.

nats-py reads the expiry marker of a per-message-TTL key as an empty live value: empty values and
entries past their end are treated as absent everywhere here.
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError

from libs.bus.connection import bus_errors
from libs.bus.provision import BLOCKS, DOWNTIME, SETTINGS
from libs.bus.subjects import kv_key
from libs.discovery import kvscan
from libs.models import InstanceKey
from libs.models.commands import GLOBAL_RECOVERIES_KEY, BlockedRecovery, GlobalRecoveries
from libs.recovery.downtime import Downtime
from libs.topology.detection import Detection


class Block(BaseModel):
    """One anti-flapping block: the recovery `uid` of `cluster` blocks more automated recoveries of the
    same scope (the cluster, or for intermediate masters the instance) until `blocked_until`. A cluster
    block also covers the cluster the `successor` now heads (its name changed with the master)."""

    model_config = ConfigDict(frozen=True)

    scope: str  # "cluster" or "instance"
    cluster: str
    alias: str
    instance: InstanceKey  # the failed instance of the blocking recovery
    successor: InstanceKey | None = None
    analysis: str
    incident: str
    uid: str
    blocked_at: datetime
    blocked_until: datetime

    @property
    def key(self) -> str:
        return block_key(self.scope, self.cluster if self.scope == "cluster" else str(self.instance))

    def active(self, now: datetime) -> bool:
        return now < self.blocked_until

    def as_blocked(self) -> BlockedRecovery:
        return BlockedRecovery(
            cluster=self.cluster,
            alias=self.alias,
            instance=self.instance,
            analysis=self.analysis,
            blocking_uid=self.uid,
            blocked_at=self.blocked_at,
            blocked_until=self.blocked_until,
        )


def block_key(scope: str, name: str) -> str:
    return f"{scope}.{kv_key(name)}"


class Deferred(BaseModel):
    """A detection refused for a reason that may pass (blocked, disabled, downtimed): retried."""

    model_config = ConfigDict(frozen=True)

    detection: Detection
    reason: str

    @property
    def key(self) -> str:
        f = self.detection.finding
        return f"deferred.{kv_key(str(f.instance))}.{f.code.value}"


DEFERRED_TTL_S = 3600  # as long as a detection may be acted upon (FailureDetectionPeriodBlockMinutes)


class ControlState(Protocol):
    async def global_recoveries(self) -> GlobalRecoveries | None: ...
    async def downtimes(self, keys: list[InstanceKey], now: datetime) -> dict[InstanceKey, Downtime]: ...
    async def blocks(self, now: datetime) -> list[Block]: ...
    async def put_block(self, block: Block) -> None: ...
    async def delete_block(self, block: Block) -> None: ...
    async def deferred(self) -> list[Deferred]: ...
    async def put_deferred(self, item: Deferred) -> None: ...
    async def delete_deferred(self, key: str) -> None: ...


async def _kv(js: JetStreamContext, bucket: str) -> KeyValue:
    with bus_errors(f"opening KV {bucket}"):
        return await js.key_value(bucket)


async def _get(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return entry.value or None


class KVControlState:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def global_recoveries(self) -> GlobalRecoveries | None:
        kv = await _kv(self.js, SETTINGS)
        with bus_errors(f"reading {SETTINGS}/{GLOBAL_RECOVERIES_KEY}"):
            value = await _get(kv, kv_key(GLOBAL_RECOVERIES_KEY))
        if value is None:
            return None
        try:
            return GlobalRecoveries.model_validate_json(value)
        except ValidationError:
            return None

    async def downtimes(self, keys: list[InstanceKey], now: datetime) -> dict[InstanceKey, Downtime]:
        if not keys:
            return {}
        kv = await _kv(self.js, DOWNTIME)
        out: dict[InstanceKey, Downtime] = {}
        for key in keys:
            with bus_errors(f"reading {DOWNTIME}/{key}"):
                value = await _get(kv, kv_key(str(key)))
            if value is None:
                continue
            try:
                downtime = Downtime.model_validate_json(value)
            except ValidationError:
                continue
            if downtime.ends_at > now:
                out[key] = downtime
        return out

    async def _values(self, prefixes: tuple[str, ...]) -> list[bytes]:
        """Live values of `baton_blocks` keys with these prefixes (one watcher pass: an expired entry,
        whose TTL marker nats-py's `kv.get` would read as live, is skipped)."""
        kv = await _kv(self.js, BLOCKS)
        with bus_errors(f"listing {BLOCKS}"):
            entries = await kvscan.scan(kv)
        return [e.value for e in entries if e.key.startswith(prefixes) and e.value]

    async def blocks(self, now: datetime) -> list[Block]:
        out = []
        for value in await self._values(("cluster.", "instance.")):
            with contextlib.suppress(ValidationError):
                block = Block.model_validate_json(value)
                if block.active(now):
                    out.append(block)
        return out

    async def put_block(self, block: Block) -> None:
        ttl = max(1, math.ceil((block.blocked_until - block.blocked_at).total_seconds()))
        with bus_errors(f"writing {BLOCKS}/{block.key}"):
            await self.js.publish(f"$KV.{BLOCKS}.{block.key}", block.model_dump_json().encode(), msg_ttl=ttl)

    async def delete_block(self, block: Block) -> None:
        await self.delete_deferred(block.key)

    async def deferred(self) -> list[Deferred]:
        out = []
        for value in await self._values(("deferred.",)):
            with contextlib.suppress(ValidationError):
                out.append(Deferred.model_validate_json(value))
        return out

    async def put_deferred(self, item: Deferred) -> None:
        with bus_errors(f"writing {BLOCKS}/{item.key}"):
            await self.js.publish(
                f"$KV.{BLOCKS}.{item.key}", item.model_dump_json().encode(), msg_ttl=DEFERRED_TTL_S
            )

    async def delete_deferred(self, key: str) -> None:
        kv = await _kv(self.js, BLOCKS)
        with bus_errors(f"deleting {BLOCKS}/{key}"):
            await kv.delete(key)


class MemoryControlState:
    """ControlState in memory (unit tests)."""

    def __init__(self) -> None:
        self.switch: GlobalRecoveries | None = None
        self.downtime: dict[InstanceKey, Downtime] = {}
        self.block: dict[str, Block] = {}
        self.later: dict[str, Deferred] = {}

    async def global_recoveries(self) -> GlobalRecoveries | None:
        return self.switch

    async def downtimes(self, keys: list[InstanceKey], now: datetime) -> dict[InstanceKey, Downtime]:
        return {k: d for k in keys if (d := self.downtime.get(k)) is not None and d.ends_at > now}

    async def blocks(self, now: datetime) -> list[Block]:
        return [b for b in self.block.values() if b.active(now)]

    async def put_block(self, block: Block) -> None:
        self.block[block.key] = block

    async def delete_block(self, block: Block) -> None:
        self.block.pop(block.key, None)

    async def deferred(self) -> list[Deferred]:
        return list(self.later.values())

    async def put_deferred(self, item: Deferred) -> None:
        self.later[item.key] = item

    async def delete_deferred(self, key: str) -> None:
        self.later.pop(key, None)
