"""The whole pipeline on one sandbox: prober + analyzer + recovery services in-process, one nats-server.

Used by the end-to-end test and by `bench/failover_mttr.py`. `failover()` SIGKILLs the master and
returns when `baton_masters` names a new master, with the time split from the recovery record.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats.js.errors

from libs.bus.connection import Bus, connect
from libs.bus.provision import MASTERS, provision
from libs.bus.subjects import cmd_subject, kv_key
from libs.config import Settings
from libs.models import Event, InstanceKey, MasterRecord, utcnow
from libs.models.operator import CommandReply, CommandRequest
from libs.recovery.audit import RecoveryRecord
from libs.recovery.record_store import RECOVERIES
from libs.sandbox import REPL_PASSWORD, REPL_USER, TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from services.analyzer.service import Analyzer
from services.prober.config import ProberConfig
from services.prober.service import ProberWorker
from services.recovery.service import RecoveryService


def stack_settings(nats_url: str, seeds: list[str], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "BatonNatsURLs": [nats_url],
        "DiscoverySeeds": seeds,
        "InstancePollSeconds": 1,
        "ReasonableInstanceCheckSeconds": 1,
        "MySQLTopologyUser": TOPOLOGY_USER,
        "MySQLTopologyPassword": TOPOLOGY_PASSWORD,
        "MySQLReplicationUser": REPL_USER,
        "MySQLReplicationPassword": REPL_PASSWORD,
        "MySQLConnectTimeoutSeconds": 1,
        "MySQLDiscoveryReadTimeoutSeconds": 1,
        "MySQLHostnameResolveMethod": "@@report_host",
        "RecoverMasterClusterFilters": ["*"],
    }
    values.update(extra)
    return Settings.model_validate(values)


@dataclass
class FailoverTiming:
    killed_at: datetime
    seen_at: datetime  # baton_masters named the new master (watcher's clock)
    record: RecoveryRecord
    published: MasterRecord

    def split(self) -> dict[str, float]:
        r = self.record

        def s(a: datetime | None, b: datetime | None) -> float:
            return round((b - a).total_seconds(), 6) if a is not None and b is not None else float("nan")

        plan = r.step("plan")
        decided = plan.ended_at if plan else None
        return {
            "detection": s(self.killed_at, r.detected_at),  # kill -> analyzer decided DeadMaster
            "handoff": s(r.detected_at, r.started_at),  # detection published -> recovery leader started
            "decision": s(r.started_at, decided),  # gates, registration, re-check, plan
            "execution": s(decided, r.promoted_at),  # hooks + MySQL steps until the successor is writable
            "publication": s(r.promoted_at, r.published_at),  # -> baton_masters written
            "total": s(self.killed_at, self.seen_at),
        }


class Stack:
    def __init__(self, sb: Sandbox, nats_url: str, *, retry_s: float = 2.0, **extra: Any) -> None:
        self.sb = sb
        self.retry_s = retry_s
        self.settings = stack_settings(nats_url, [str(sb.key(n)) for n in sb.names], **extra)
        self.bus: Bus | None = None
        self.prober: ProberWorker | None = None
        self.analyzer: Analyzer | None = None
        self.recovery: RecoveryService | None = None

    async def start(self, ready_within: float = 30.0) -> Stack:
        try:
            return await self._start(ready_within)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, ready_within: float) -> Stack:
        self.bus = await connect(self.settings.BatonNatsURLs, "stack")
        await provision(self.bus.js)
        self.prober = await ProberWorker(
            ProberConfig.from_settings(self.settings, worker_id="p1"), self.bus
        ).start()
        self.analyzer = Analyzer(self.settings, node="a1")
        await self.analyzer.start()
        self.recovery = await RecoveryService(self.settings, node="r1", retry_s=self.retry_s).start()
        keys = {self.sb.key(n) for n in self.sb.names}
        deadline = time.monotonic() + ready_within
        while True:
            known = self.recovery.memory.states
            ready = all(k in known and known[k].last_probe.reachable for k in keys)
            if ready and self.recovery.is_leader:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stack not ready: known {sorted(map(str, known))}, leader {self.recovery.is_leader}"
                )
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.recovery is not None:
            await self.recovery.stop()
        if self.analyzer is not None:
            await self.analyzer.stop()
        if self.prober is not None:
            await self.prober.stop()
        if self.bus is not None:
            await self.bus.close()

    async def command(self, verb: str, timeout: float = 60.0, **fields: Any) -> CommandReply:
        """What the API does: a CommandRequest to the recovery leader, its CommandReply back."""
        assert self.bus is not None
        request = CommandRequest.model_validate({"verb": verb, "requested_by": "test", **fields})
        msg = await self.bus.nc.request(
            cmd_subject("recovery", verb), request.model_dump_json().encode(), timeout=timeout
        )
        return CommandReply.model_validate_json(msg.data)

    async def failover(self, within: float = 15.0, how: signal.Signals = signal.SIGKILL) -> FailoverTiming:
        """Signal the master (SIGKILL: a crash; SIGSTOP: a hung server, the caller SIGCONTs it); wait
        until baton_masters names another master; return the timings."""
        assert self.bus is not None
        js = self.bus.js
        master = self.sb.key(self.sb.master)
        alias = str(master)
        kv = await js.key_value(MASTERS)
        watcher = await kv.watch(kv_key(alias))
        try:
            killed_at = utcnow()
            self.sb.kill(self.sb.master, how)
            published, seen_at = await _next_master(watcher, master, within)
        finally:
            await watcher.stop()
        record = await _record(js, alias, published.recovery_uid or "", within)
        return FailoverTiming(killed_at, seen_at, record, published)


async def _next_master(watcher: Any, old: InstanceKey, within: float) -> tuple[MasterRecord, datetime]:
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no new master in baton_masters within {within:g}s")
        try:
            entry = await watcher.updates(timeout=remaining)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        if entry is None or not entry.value:
            continue
        record = MasterRecord.model_validate_json(entry.value)
        if record.master != old and record.recovery_uid:
            return record, utcnow()


async def _record(js: Any, alias: str, uid: str, within: float) -> RecoveryRecord:
    kv = await js.key_value(RECOVERIES)
    deadline = time.monotonic() + within
    while True:
        try:
            entry = await kv.get(kv_key(alias))
            record = RecoveryRecord.model_validate_json(entry.value)
            if record.uid == uid and not record.active:
                return record
        except nats.js.errors.KeyNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"recovery {uid} not closed within {within:g}s")
        await asyncio.sleep(0.05)


class Events:
    """Every recovery event (core NATS subscription on `baton.recovery.>`), to wait for one."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._sub: Any = None
        self._new = asyncio.Event()

    async def start(self, bus: Bus) -> Events:
        async def on_msg(msg: Any) -> None:
            self.seen.append(Event.model_validate_json(msg.data))
            self._new.set()

        self._sub = await bus.nc.subscribe("baton.recovery.>", cb=on_msg)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def matching(self, type_: str, **data: Any) -> list[Event]:
        out = []
        for event in self.seen:
            if event.type != type_:
                continue
            record = event.data.get("record", event.data)
            if all(_plain(record.get(k)) == v for k, v in data.items()):
                out.append(event)
        return out

    async def wait(self, type_: str, within: float = 15.0, **data: Any) -> Event:
        deadline = time.monotonic() + within
        while True:
            found = self.matching(type_, **data)
            if found:
                return found[-1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e.type, e.data.get("record", {}).get("reason", "")) for e in self.seen]
                raise TimeoutError(f"no {type_} {data} within {within:g}s; seen {seen}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout=remaining)


def _plain(value: Any) -> Any:
    """An InstanceKey as dumped to JSON (`{"host", "port"}`) compares as `host:port`."""
    if isinstance(value, dict) and set(value) >= {"host", "port"}:
        return str(InstanceKey.model_validate(value))
    return value


async def master_of(js: Any, alias: str) -> MasterRecord | None:
    kv = await js.key_value(MASTERS)
    try:
        entry = await kv.get(kv_key(alias))
    except nats.js.errors.KeyNotFoundError:
        return None
    return MasterRecord.model_validate_json(entry.value) if entry.value else None
