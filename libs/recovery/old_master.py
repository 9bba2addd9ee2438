"""Fencing a failed master that comes back: it must never be a second writable master.

After a successful failover the leader watches the failed master. Whenever it answers and is writable
(read_only off, and not a replica of anyone), the leader sets read_only (plus super_read_only on MySQL
when UseSuperReadOnly), records when in the recovery record (`fenced_at`) and publishes a `fenced`
event. It is never repointed automatically: whether the old data (possibly with transactions the new
master never got) may rejoin is the operator's call.

A watch ends when the instance has become a replica (someone repointed it), when `baton_masters` names
it master again (the operator put it back), or after `watch_for`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.errors import LeadershipLost
from libs.models import Flavor, InstanceKey, utcnow
from libs.mysql import ConnectionPool, Credentials, ProbeSettings, probe
from libs.mysql.commands import set_read_only
from libs.mysql.fenced import FencedSession
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.events import EventSink
from libs.recovery.fence import Fence

log = logging.getLogger(__name__)

CurrentMaster = Callable[[str], Awaitable[InstanceKey | None]]
OnFenced = Callable[[RecoveryRecord], Awaitable[None]]


@dataclass
class _Watch:
    record: RecoveryRecord
    until: datetime


class OldMasterFencer:
    def __init__(
        self,
        pool: ConnectionPool,
        creds: Credentials,
        events: EventSink,
        *,
        super_read_only: bool = False,
        current_master: CurrentMaster | None = None,
        watch_for: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
        on_fenced: OnFenced | None = None,
        statement_timeout_s: float = 1.5,
    ) -> None:
        """`pool`: an action pool (libs.mysql.fenced.action_pool); `statement_timeout_s`: the limit of the
        fencing statements, below the lease TTL (ExecutionOptions.statement_timeout_s)."""
        self.pool, self.creds, self.events = pool, creds, events
        self.statement_timeout_s = statement_timeout_s
        self.on_fenced = on_fenced  # e.g. write fenced_at into the stored record (the audit)
        self.super_read_only, self.current_master = super_read_only, current_master
        self.watch_for, self.clock = watch_for, clock
        self.watches: dict[InstanceKey, _Watch] = {}
        self._probe_settings = ProbeSettings(connect_timeout=1.0, read_timeout=2.0)

    def watch(self, record: RecoveryRecord) -> None:
        """Watch the failed master of a successful master failover (older records are ignored; an
        intermediate master is not a writer, a gracefully demoted master replicates on purpose)."""
        if record.outcome is not Outcome.SUCCEEDED or record.ended_at is None:
            return
        if record.kind is not RecoveryKind.MASTER:
            return
        until = record.ended_at + self.watch_for
        if until <= self.clock():
            return
        self.watches[record.failed] = _Watch(record, until)

    async def check_once(self, fence: Fence) -> list[RecoveryRecord]:
        """Probe every watched instance once; fence the writable ones. Returns the records fenced."""
        now = self.clock()
        for key in [k for k, w in self.watches.items() if w.until <= now]:
            del self.watches[key]
        results = await asyncio.gather(*(self._check(key, fence) for key in list(self.watches)))
        return [r for r in results if r is not None]

    async def _check(self, key: InstanceKey, fence: Fence) -> RecoveryRecord | None:
        watch = self.watches.get(key)
        if watch is None:
            return None
        snap = await probe(key, self.creds, self._probe_settings, pool=self.pool)
        if not snap.reachable:
            return None
        if snap.replication is not None:
            log.info("old master %s replicates again (from %s): no longer watched", key, snap.master_key)
            self.watches.pop(key, None)
            return None
        if self.current_master is not None and await self.current_master(watch.record.alias) == key:
            log.info(
                "old master %s is the published master of %s again: no longer watched",
                key,
                watch.record.alias,
            )
            self.watches.pop(key, None)
            return None
        needs_super = self.super_read_only and snap.flavor is Flavor.MYSQL
        if snap.read_only and (snap.super_read_only or not needs_super):
            return None
        session = FencedSession(self.pool, key, self.creds, fence, self.statement_timeout_s)
        try:
            await set_read_only(session, True, super_read_only=self.super_read_only)  # fenced per statement
        except LeadershipLost:
            raise
        except Exception as exc:  # noqa: BLE001 - retried at the next check
            log.warning("old master %s is writable and could not be fenced: %s", key, exc)
            return None
        record = watch.record.model_copy(deep=True)
        record.fenced_at = self.clock()
        record.epoch = fence.epoch
        record.errors.append(
            f"old master {key} came back writable; set read_only at {record.fenced_at.isoformat()}"
        )
        watch.record = record
        log.warning("old master %s came back writable: set read_only (recovery %s)", key, record.uid)
        await self.events(record, "fenced")
        if self.on_fenced is not None:
            try:
                await self.on_fenced(record)
            except Exception as exc:  # noqa: BLE001 - the event is out; the stored copy is a convenience
                log.warning("old master %s: fenced, but the record could not be updated: %s", key, exc)
        return record

    async def run(self, fence: Fence, interval_s: float = 1.0) -> None:
        """Check every `interval_s` while leading."""
        while True:
            try:
                await self.check_once(fence)
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the watch loop must survive anything
                log.warning("old master fencing check failed: %s", exc)
            await asyncio.sleep(interval_s)
