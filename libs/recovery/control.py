"""The operator's control state the recovery reads and writes in KV: global switch, downtime, blocks.

- `baton_settings/recoveries`: `GlobalRecoveries` (written by the API; absent = enabled).
- `baton_downtime/<kv_key(host:port)>`: `Downtime` (`downtime.py`; written by the API and by
  failovers for lost instances), per-message TTL; readers also check `ends_at`.
- `baton_blocks`: anti-flapping blocks (`Block`), one key per blocked scope:
  `cluster.<kv_key(cluster)>` after a master recovery (RecoveryPeriodBlockSeconds), and
  `instance.<kv_key(host:port)>` after an intermediate-master recovery; per-message TTL = the block
  period, and `blocked_until` is checked too. An acknowledgement deletes the key. The same bucket
  keeps the detections refused for a reason that may pass (`Deferred`, key
  `deferred.<kv_key(host:port)>.<code>`, TTL one hour), so a new leader retries them too; those
  refused by a block still in force are orchestrator's blocked recoveries (`blocked_attempts`).

nats-py reads the expiry marker of a per-message-TTL key as an empty live value: single keys read
empty are absent, entries past their end too. Whole-bucket reads go through `libs.bus.kvread.scan`
(tombstones and expiry markers skipped; a short answer is a BusError, never "no blocks"). Entries that
cannot be decoded fail closed and are logged as errors with their key: a downtime still downtimes its
instance, a block still blocks the scope its key names (until acknowledged or expired), an undecodable
global switch disables automated recoveries, an undecodable deferred detection is not retried (and a
`baton_candidates` rule counts as must_not: `options.parse_registered`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import BLOCKS, DOWNTIME, SETTINGS
from libs.bus.subjects import kv_key, kv_key_decode
from libs.models import InstanceKey
from libs.models.operator import GLOBAL_RECOVERIES_KEY, BlockedRecovery, GlobalRecoveries
from libs.recovery.audit import RecoveryRecord
from libs.recovery.downtime import Downtime
from libs.topology.detection import Detection

log = logging.getLogger(__name__)
UNDECODABLE_HOLD = timedelta(minutes=1)  # an undecodable entry holds back this long past each read


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


def block_key(scope: str, name: str) -> str:
    return f"{scope}.{kv_key(name)}"


def undecodable_block(key: str, now: datetime) -> Block | None:
    """Fail closed: the block standing for an undecodable `baton_blocks/<key>`, covering the scope its
    key names (acknowledging it deletes the key); None when the key names no scope either."""
    scope, _, token = key.partition(".")
    try:
        name = kv_key_decode(token)
        instance = InstanceKey.parse(name)
    except ValueError:
        return None
    if scope not in ("cluster", "instance"):
        return None
    return Block(
        scope=scope,
        cluster=name,
        alias=name,
        instance=instance,
        analysis="undecodable block",
        incident="",
        uid=f"undecodable:{key}",
        blocked_at=now,
        blocked_until=now + UNDECODABLE_HOLD,
    )


def undecodable_global_recoveries() -> GlobalRecoveries:
    """Fail closed: an undecodable global switch counts as "disabled" (someone wrote it, most likely to
    disable; a failover on an operator state nobody can read is the unsafe guess). Forced (manual)
    recoveries still run; `enable-global-recoveries` overwrites the entry."""
    return GlobalRecoveries(
        enabled=False, by=f"an undecodable entry {SETTINGS}/{GLOBAL_RECOVERIES_KEY} (fix or delete it)"
    )


def undecodable_downtime(key: InstanceKey, now: datetime) -> Downtime:
    """Fail closed: an instance whose `baton_downtime` entry cannot be decoded counts as downtimed."""
    return Downtime(
        instance=str(key),
        reason=f"undecodable entry {DOWNTIME}/{kv_key(str(key))} (fix or delete it)",
        owner="unknown",
        started_at=now,
        ends_at=now + UNDECODABLE_HOLD,
    )


class Deferred(BaseModel):
    """A detection refused for a reason that may pass (blocked, disabled, downtimed): retried. It also
    says when and how often it was refused for the same cause (code and blocking recovery): for a block,
    that is orchestrator's blocked recovery (`blocked_attempts`)."""

    model_config = ConfigDict(frozen=True)

    detection: Detection
    reason: str
    code: str = ""  # the refusal's skip_code: blocked, disabled, downtimed
    blocked_by: str = ""  # `blocked`: the uid of the recovery whose block refused it
    first_refused_at: datetime | None = None
    last_refused_at: datetime | None = None
    refusals: int = 0

    @property
    def key(self) -> str:
        f = self.detection.finding
        return f"deferred.{kv_key(str(f.instance))}.{f.code.value}"

    @classmethod
    def refused(cls, detection: Detection, record: RecoveryRecord, previous: Deferred | None) -> Deferred:
        """`detection` after the refusal `record` (closed `skipped`): counted on from `previous` when
        that was refused for the same cause (same code, same blocking recovery), else from one."""
        at = record.ended_at or record.started_at
        cause = (record.skip_code, record.blocked_by)
        same = previous if previous is not None and (previous.code, previous.blocked_by) == cause else None
        return cls(
            detection=detection,
            reason=record.reason,
            code=record.skip_code,
            blocked_by=record.blocked_by,
            first_refused_at=same.first_refused_at if same else at,
            last_refused_at=at,
            refusals=same.refusals + 1 if same else 1,
        )

    def news(self, previous: Deferred | None) -> bool:
        """Worth writing to `baton_blocks` (for a next leader): new, or refused for another reason, or
        a newer detection. A repeated refusal only moves `last_refused_at` and `refusals`, in memory."""
        return previous is None or previous.reason != self.reason or previous.detection != self.detection


def blocked_attempts(deferred: Iterable[Deferred], blocks: Iterable[Block]) -> list[BlockedRecovery]:
    """orchestrator's blocked recoveries: the deferred detections refused by a block still in force,
    with that block's recovery and end; the latest refusal first."""
    by_uid = {b.uid: b for b in blocks}
    out = []
    for item in deferred:
        block = by_uid.get(item.blocked_by)
        if item.code != "blocked" or block is None:
            continue
        f = item.detection.finding
        out.append(
            BlockedRecovery(
                cluster=f.cluster,
                alias=f.alias,
                instance=f.instance,
                analysis=f.code.value,
                blocking_uid=block.uid,
                first_blocked_at=item.first_refused_at,
                last_blocked_at=item.last_refused_at,
                count=item.refusals,
                blocked_until=block.blocked_until,
                reason=item.reason,
            )
        )
    out.sort(key=lambda b: (b.last_blocked_at or _NEVER, str(b.instance)), reverse=True)
    return out


_NEVER = datetime.min.replace(tzinfo=UTC)


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
        except ValidationError as exc:
            log.error(
                "%s/%s: undecodable, automated recoveries count as disabled: %s",
                SETTINGS,
                GLOBAL_RECOVERIES_KEY,
                exc,
            )
            return undecodable_global_recoveries()

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
            except ValidationError as exc:
                log.error(
                    "%s/%s: undecodable, %s counts as downtimed: %s", DOWNTIME, kv_key(str(key)), key, exc
                )
                downtime = undecodable_downtime(key, now)
            if downtime.ends_at > now:
                out[key] = downtime
        return out

    async def _entries(self, prefixes: tuple[str, ...]) -> list[kvread.KVEntry]:
        """Live entries of `baton_blocks` keys with these prefixes (`kvread.scan`: expired and deleted
        keys are absent, and a short answer is a BusError, never "nothing blocked")."""
        return [e for e in await kvread.scan(self.js, BLOCKS) if e.key.startswith(prefixes)]

    async def blocks(self, now: datetime) -> list[Block]:
        out = []
        for entry in await self._entries(("cluster.", "instance.")):
            try:
                block: Block | None = Block.model_validate_json(entry.value)
            except ValidationError as exc:
                block = undecodable_block(entry.key, now)
                then = "ignored" if block is None else "it blocks the scope its key names"
                log.error("%s/%s: undecodable block, %s: %s", BLOCKS, entry.key, then, exc)
            if block is not None and block.active(now):
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
        for entry in await self._entries(("deferred.",)):
            try:
                out.append(Deferred.model_validate_json(entry.value))
            except ValidationError as exc:
                log.error("%s/%s: undecodable deferred detection, not retried: %s", BLOCKS, entry.key, exc)
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
