"""Fence watches: the failed masters the recovery leader keeps read-only, persisted in `baton_fences`.

One key per watched server (`kv_key(host:port)`), value a `FenceWatch`: the successful master failover
that left it behind (a copy of its record: what the `fenced` events carry), when the watch began, how
many times the server was found writable and made read-only, and, once ended, when, by whom and why.
An active watch has no TTL: it lasts until an operator ends it (`ack-recoveries` naming the recovery or
the server) or `baton_masters` names the server master again. An ended watch is kept `ENDED_TTL_S`
(per-message TTL), longer than the window in which a new leader re-creates watches from recent
records, so an ended watch is never brought back by a leader change.

Every leader reads the bucket when its term starts (`kvread.scan`: a short answer is a BusError, never
"no watch"). An entry that cannot be decoded fails closed: the server its key names is watched.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import FENCES, MASTERS
from libs.bus.subjects import kv_key, kv_key_decode
from libs.models import InstanceKey, MasterRecord, utcnow
from libs.recovery.audit import RecoveryRecord

log = logging.getLogger(__name__)

ENDED_TTL_S = 2 * 24 * 3600  # > the 24 h in which a new leader re-creates watches from recent records


class FenceWatch(BaseModel):
    """One failed master kept read-only (see the module docstring)."""

    instance: InstanceKey
    recovery: RecoveryRecord  # the failover that left it behind (copy taken when the watch began)
    started_at: datetime
    epoch: int  # the leader that began the watch
    fenced: int = 0  # times it was found writable and made read-only
    last_fenced_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str = ""
    ended_reason: str = ""

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def key(self) -> str:
        return kv_key(str(self.instance))

    @property
    def uid(self) -> str:
        return self.recovery.uid


def undecodable_watch(key: str, now: datetime) -> FenceWatch | None:
    """Fail closed: the watch standing for an undecodable `baton_fences/<key>` (None if the key names no
    server). Ending it (ack-recoveries naming the server) replaces the entry."""
    try:
        instance = InstanceKey.parse(kv_key_decode(key))
    except ValueError:
        return None
    name = str(instance)
    record = RecoveryRecord(
        incident="",
        code="undecodable fence watch",
        cluster=name,
        alias=name,
        failed=instance,
        epoch=0,
        started_at=now,
    )
    return FenceWatch(instance=instance, recovery=record, started_at=now, epoch=0)


class FenceStore(Protocol):
    async def all(self, now: datetime) -> list[FenceWatch]: ...
    async def get(self, instance: InstanceKey) -> FenceWatch | None: ...
    async def put(self, watch: FenceWatch) -> None: ...


class KVFenceStore:
    """FenceStore over `baton_fences` (the leader is its only writer, fenced before every write)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def all(self, now: datetime) -> list[FenceWatch]:
        out = []
        for entry in await kvread.scan(self.js, FENCES):
            watch = _decode(entry.key, entry.value, now)
            if watch is not None:
                out.append(watch)
        return out

    async def get(self, instance: InstanceKey) -> FenceWatch | None:
        key = kv_key(str(instance))
        with bus_errors(f"reading {FENCES}/{key}"):
            kv = await self.js.key_value(FENCES)
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
        if not entry.value:  # a delete or an expiry marker (nats-py reads it as an empty value)
            return None
        return _decode(key, entry.value, utcnow())

    async def put(self, watch: FenceWatch) -> None:
        ttl = None if watch.active else ENDED_TTL_S
        with bus_errors(f"writing {FENCES}/{watch.key}"):
            await self.js.publish(f"$KV.{FENCES}.{watch.key}", watch.model_dump_json().encode(), msg_ttl=ttl)


def _decode(key: str, value: bytes, now: datetime) -> FenceWatch | None:
    try:
        return FenceWatch.model_validate_json(value)
    except ValidationError as exc:
        watch = undecodable_watch(key, now)
        then = "ignored" if watch is None else "the server its key names stays watched"
        log.error("%s/%s: undecodable fence watch, %s: %s", FENCES, key, then, exc)
        return watch


class MemoryFenceStore:
    """FenceStore in memory (unit tests, tools)."""

    def __init__(self) -> None:
        self.watches: dict[InstanceKey, FenceWatch] = {}

    async def all(self, now: datetime) -> list[FenceWatch]:
        return [
            w
            for w in self.watches.values()
            if w.active or (w.ended_at is not None and now - w.ended_at < timedelta(seconds=ENDED_TTL_S))
        ]

    async def get(self, instance: InstanceKey) -> FenceWatch | None:
        return self.watches.get(instance)

    async def put(self, watch: FenceWatch) -> None:
        self.watches[watch.instance] = watch


async def named_masters(js: JetStreamContext) -> set[InstanceKey]:
    """Every server `baton_masters` names as a cluster's master (under any alias: a takeover back to an
    old master records it under the alias its cluster has then)."""
    out = set()
    for entry in await kvread.scan(js, MASTERS):
        try:
            out.add(MasterRecord.model_validate_json(entry.value).master)
        except ValidationError as exc:
            log.error("%s/%s: undecodable master record, ignored: %s", MASTERS, entry.key, exc)
    return out
