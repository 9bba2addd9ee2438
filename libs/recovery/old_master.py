"""Fencing a failed master that comes back: it must never be a second writable master.

After a successful master failover the leader *watches* the failed master (`FenceWatch`, persisted in
`baton_fences`, `fence_watch.py`, so every new leader carries on) and keeps it read-only:

- **fast**: one guard task per watched server. While the server is down it starts a bare TCP connect
  (`TCP_PROBE_TIMEOUT_S`, so a partitioned server costs no full MySQL connect timeout) every
  `DOWN_INTERVAL_S`, overlapping (connect timeout `CONNECT_TIMEOUT_S`); once it answers, it reads `read_only`
  (+ `super_read_only` on MySQL) every `UP_INTERVAL_S`, so a restart is noticed at the next read. A
  server found writable is made read-only at once (`set_read_only`, + super_read_only on MySQL with
  UseSuperReadOnly), through the fenced execute (libs/mysql/fenced.py): a leader whose lease lapsed
  sends nothing.
- **whatever its replication configuration**: a server that replicates, or has a CHANGE MASTER left
  behind (not started), is kept read-only too; it is never repointed (whether its data may rejoin is the
  operator's call).
- **audited**: each fencing publishes a `fenced` event (record copy with `fenced_at` and a line in
  `errors`), annotates the stored recovery record the same way, and counts in the watch.
- **until an operator says otherwise**: the watch ends with `ack-recoveries` naming the recovery (uid)
  or the server (instance) — not a cluster-wide or global acknowledgement, which lifts blocks in bulk —
  or when `baton_masters` names the server master again (a takeover or recovery put it back). The end
  is a `fence-ended` event and a line in the record. Nothing is fenced while an open recovery is
  promoting the server (its successor or designated target).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import Enum

from libs.errors import LeadershipLost, ReplicationCommandError
from libs.models import InstanceKey, utcnow
from libs.mysql import ConnectionPool, Credentials
from libs.mysql.fenced import FencedSession, action_pool
from libs.mysql.replication import read_only_flags, set_read_only
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.fence import Fence
from libs.recovery.fence_watch import FenceStore, FenceWatch
from libs.recovery.record_store import RecordStore
from libs.recovery.recovery_events import EventSink
from libs.recovery.tasks import log_crash

log = logging.getLogger(__name__)

# A refused connection (server host up, mysqld not yet) fails at once, so a restart is caught at the next
# attempt; only a black-holed host (down, partitioned) makes an attempt last this long, and it starts
# refusing (then accepting) long before mysqld is up again. Room for a cross-DC handshake.
CONNECT_TIMEOUT_S = 1.0
# While a watched server is down, a bare TCP connect with this timeout is tried before each MySQL look:
# a server behind a partition drops packets, and a MySQL connect would wait its whole timeout each time
# (a returning server then went unfenced for up to a second); a fresh SYN every ~0.25 s finds it at once.
TCP_PROBE_TIMEOUT_S = 0.2
# The probes overlap: a fresh one every DOWN_INTERVAL_S, not after the previous timed out, so a server
# behind a healed partition is found within ~0.05 s instead of up to 0.25 s (the chaos tier's rejoin
# window); a round of them lasts TCP_ROUND_S, then the prepared answer is refreshed if due.
TCP_ROUND_S = 1.0
DOWN_INTERVAL_S = 0.05  # between connection attempts while the server is down
UP_INTERVAL_S = 0.1  # between reads of read_only while it answers
MASTERS_EVERY_S = 2.0  # read-only watched servers: how often baton_masters is read for them (one read)
EXEMPT_REFRESH_S = 1.0  # while a watched server is down: how often its "may it be fenced?" is asked
EXEMPT_FRESH_S = 2.5  # how old that answer may be when the server comes back writable
EXEMPT_TIMEOUT_S = 0.5  # the look at baton_masters and open recoveries before fencing; then fence anyway
WATCH_NEW_FOR = timedelta(hours=24)  # watches are begun for failovers that ended this recently

NamedMasters = Callable[[], Awaitable[set[InstanceKey]]]


class _State(Enum):
    DOWN = "down"
    UP = "up"
    ENDED = "ended"


def fencer_pool(statement_timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> ConnectionPool:
    """The fencer's own action pool (its connection attempts never queue behind a failover's),
    statements bounded like every action."""
    return action_pool(connect_timeout=connect_timeout_s, statement_timeout=statement_timeout_s)


class OldMasterFencer:
    def __init__(
        self,
        pool: ConnectionPool,
        creds: Credentials,
        events: EventSink,
        *,
        super_read_only: bool = False,
        store: FenceStore | None = None,
        records: RecordStore | None = None,
        named_masters: NamedMasters | None = None,
        clock: Callable[[], datetime] = utcnow,
        statement_timeout_s: float = 1.5,
        down_interval_s: float = DOWN_INTERVAL_S,
        up_interval_s: float = UP_INTERVAL_S,
    ) -> None:
        """`pool`: an action pool (`fencer_pool`); `store`: where watches persist (None: memory only);
        `records`: the recovery records (annotated on fencing; open ones exempt their promoted server);
        `named_masters`: the servers baton_masters names (a watched one there ends its watch)."""
        self.pool, self.creds, self.events = pool, creds, events
        self.super_read_only, self.store, self.records = super_read_only, store, records
        self.named_masters, self.clock = named_masters, clock
        self.statement_timeout_s = statement_timeout_s
        self.down_interval_s, self.up_interval_s = down_interval_s, up_interval_s
        self.watches: dict[InstanceKey, FenceWatch] = {}
        self._unsaved: set[InstanceKey] = set()  # begun in memory, not yet reconciled with the store
        self._guards: dict[InstanceKey, asyncio.Task[None]] = {}
        self._masters_read: dict[InstanceKey, float] = {}  # monotonic time of the last baton_masters look
        self._named: tuple[float, set[InstanceKey]] | None = None  # the last read, shared by the guards
        self._locks: dict[InstanceKey, asyncio.Lock] = {}  # one look or one end at a time per server
        # while a server is down: (monotonic time, answer) of its last successful "may it be fenced?"
        self._answers: dict[InstanceKey, tuple[float, str | None]] = {}
        self._preparing: dict[InstanceKey, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._fence: Fence | None = None
        self._early: set[InstanceKey] = set()  # watches begun at a promotion, not saved yet

    # -- what is watched -------------------------------------------------------------------------------
    def watch(self, record: RecoveryRecord) -> None:
        """Begin watching the failed master of a successful master failover that ended within
        `WATCH_NEW_FOR` (an intermediate master is not a writer; a gracefully demoted master replicates
        on purpose). A watch the store already holds for the same recovery, active or ended, wins."""
        if record.outcome is not Outcome.SUCCEEDED or record.ended_at is None:
            return
        if record.kind not in (RecoveryKind.MASTER, RecoveryKind.CO_MASTER):  # a dead co-master too
            return
        now = self.clock()
        if record.ended_at + WATCH_NEW_FOR <= now:
            return
        current = self.watches.get(record.failed)
        if current is not None and current.uid == record.uid:
            if record.failed in self._early:  # begun at the promotion: now with the closed record, saved
                self._early.discard(record.failed)
                self.watches[record.failed] = current.model_copy(update={"recovery": record})
                self._unsaved.add(record.failed)
                self._wake.set()
            return
        self.watches[record.failed] = FenceWatch(
            instance=record.failed, recovery=record, started_at=now, epoch=record.epoch
        )
        self._unsaved.add(record.failed)
        self._wake.set()

    def watch_promoted(self, record: RecoveryRecord) -> None:
        """Begin watching the failed master the moment its successor is writable, in memory (`watch`
        saves it when the recovery closes). Closing may wait on JetStream: right after a partition heals
        it answered "temporarily unavailable" for seconds, and the old master, back and writable, stayed
        so for 4.7 s next to the new one (chaos tier, takeover-dc-partition)."""
        if record.kind not in (RecoveryKind.MASTER, RecoveryKind.CO_MASTER) or record.failed in self.watches:
            return
        if record.successor is None or record.successor == record.failed:
            return
        self.watches[record.failed] = FenceWatch(
            instance=record.failed,
            recovery=record.model_copy(deep=True),
            started_at=self.clock(),
            epoch=record.epoch,
        )
        self._early.add(record.failed)
        self._wake.set()

    async def _load(self) -> None:
        """The watches in the store (an earlier leader's), merged with those begun in memory."""
        if self.store is None:
            return
        for stored in await self.store.all(self.clock()):
            mine = self.watches.get(stored.instance)
            if mine is None and stored.active:
                self.watches[stored.instance] = stored
            elif mine is not None and mine.uid == stored.uid:
                self._adopt(stored)

    def _adopt(self, stored: FenceWatch) -> None:
        self._unsaved.discard(stored.instance)
        if stored.active:
            self.watches[stored.instance] = stored
        else:
            self.watches.pop(stored.instance, None)

    async def _save_new(self, fence: Fence) -> None:
        """Persist the watches begun in memory (unless the store has them for the same recovery)."""
        if self.store is None:
            self._unsaved.clear()
            return
        for key in sorted(self._unsaved):
            watch = self.watches.get(key)
            if watch is None:
                self._unsaved.discard(key)
                continue
            stored = await self.store.get(key)
            if stored is not None and (
                stored.uid == watch.uid
                or (stored.active and _ended(stored.recovery) >= _ended(watch.recovery))
            ):
                self._adopt(stored)
                continue
            fence.check()
            await self.store.put(watch)
            self._unsaved.discard(key)
            log.info("old master %s watched (recovery %s): kept read-only", key, watch.uid)

    # -- the leader's loop -----------------------------------------------------------------------------
    async def run(self, fence: Fence) -> None:
        """While leading: load the watches, then one guard per watched server until the term ends."""
        self._fence = fence
        loaded = self.store is None
        try:
            while fence.held:
                try:
                    if not loaded:
                        await self._load()
                        loaded = True
                    await self._save_new(fence)
                except LeadershipLost:
                    return
                except Exception as exc:  # noqa: BLE001 - retried; the guards run from memory meanwhile
                    log.warning("old master fencing: fence watches not loaded/saved yet: %s", exc)
                for key, watch in list(self.watches.items()):
                    if watch.active and (key not in self._guards or self._guards[key].done()):
                        guard = asyncio.create_task(self._guard(key, fence), name=f"fence {key}")
                        what = f"old master fencing of {key}"
                        guard.add_done_callback(log_crash(log, what, (LeadershipLost,)))
                        self._guards[key] = guard
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
        finally:
            guards = list(self._guards.values()) + list(self._preparing.values())
            self._guards.clear()
            self._preparing.clear()
            for task in guards:
                task.cancel()
            if guards:
                await asyncio.wait(guards)

    async def _guard(self, key: InstanceKey, fence: Fence) -> None:
        # Begin as if down: TCP probes first and the answer prepared at once. A watch begins right after
        # the failover, usually while the failed master is still unreachable: begun "up", its first look
        # waited out a MySQL connect timeout (1 s) before the probes and the prepared answer started,
        # and a server back in that second was fenced ~0.9 s after answering (chaos, master-dc-isolated).
        state = _State.DOWN
        while True:
            watch = self.watches.get(key)
            if watch is None or not watch.active:
                return
            if state is _State.DOWN:
                preparing = self._preparing.get(key)
                if preparing is None or preparing.done():  # beside the probes, never in their way
                    self._preparing[key] = asyncio.create_task(self._prepare_answer(key))
                if not await tcp_open_any(key, TCP_PROBE_TIMEOUT_S, self.down_interval_s, TCP_ROUND_S):
                    continue
            try:
                state, _ = await self._look(key, fence, was_down=state is _State.DOWN)
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the guard must survive anything
                log.warning("old master %s: fencing check failed: %s", key, exc)
                state = _State.DOWN
            if state is _State.ENDED:
                return
            await asyncio.sleep(self.down_interval_s if state is _State.DOWN else self.up_interval_s)

    async def check_once(self, fence: Fence) -> list[RecoveryRecord]:
        """Look at every watched server once; fence the writable ones. Returns the records fenced."""
        results = await asyncio.gather(*(self._look(key, fence) for key in list(self.watches)))
        return [record for _, record in results if record is not None]

    # -- one look --------------------------------------------------------------------------------------
    def _lock(self, key: InstanceKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _look(
        self, key: InstanceKey, fence: Fence, *, was_down: bool = False
    ) -> tuple[_State, RecoveryRecord | None]:
        async with self._lock(key):
            watch = self.watches.get(key)
            if watch is None or not watch.active:  # ended meanwhile
                return _State.ENDED, None
            return await self._check(watch, fence, was_down=was_down)

    async def _prepare_answer(self, key: InstanceKey) -> None:
        """While `key` is down, keep a fresh answer to "may it be fenced?" at hand (every
        `EXEMPT_REFRESH_S`), so the moment it answers writable it is fenced without a bus round trip:
        right after a partition heals JetStream may be catching up and slow to answer. A server that is
        down cannot be being made master meanwhile (a promotion needs it reachable), so a "no" from
        within `EXEMPT_FRESH_S` before it came back still holds."""
        seen = self._answers.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[0] < EXEMPT_REFRESH_S:
            return
        answer, certain = await self._exempt_look(key)
        if certain:
            self._answers[key] = (time.monotonic(), answer)

    async def _check(
        self, watch: FenceWatch, fence: Fence, *, was_down: bool = False
    ) -> tuple[_State, RecoveryRecord | None]:
        key = watch.instance
        session = FencedSession(self.pool, key, self.creds, fence, self.statement_timeout_s)
        try:
            ro, sro = await read_only_flags(session)  # fenced, like every statement of the leader
        except ReplicationCommandError:
            return _State.DOWN, None
        mysql = not (await session.dialect()).is_mariadb
        if ro and (sro or not (self.super_read_only and mysql)):
            if await self._named_again(watch, fence):
                return _State.ENDED, None
            return _State.UP, None
        prepared = self._answers.pop(key, None) if was_down else None
        if prepared is not None and prepared[1] is None and time.monotonic() - prepared[0] <= EXEMPT_FRESH_S:
            exempt = None  # asked while it was down, a moment ago: fence at once
        else:
            exempt = await self._exempt(key)
        if exempt == "named":
            await self._finish(watch, fence, by="baton", reason="baton_masters names it master again")
            return _State.ENDED, None
        if exempt == "promoting":
            log.info("old master %s is writable while a recovery promotes it: not fenced", key)
            return _State.UP, None
        try:
            await set_read_only(session, True, super_read_only=self.super_read_only)
        except ReplicationCommandError as exc:
            log.warning("old master %s is writable and could not be fenced (retried): %s", key, exc)
            return _State.UP, None
        return _State.UP, await self._fenced(watch, fence)

    async def _named_again(self, watch: FenceWatch, fence: Fence) -> bool:
        """Every `MASTERS_EVERY_S` for a read-only server: does baton_masters name it now? Ends it if so."""
        if self.named_masters is None:
            return False
        now = time.monotonic()
        if now - self._masters_read.get(watch.instance, 0.0) < MASTERS_EVERY_S:
            return False
        self._masters_read[watch.instance] = now
        try:
            if self._named is None or now - self._named[0] >= MASTERS_EVERY_S:
                self._named = (now, await self.named_masters())
            named = watch.instance in self._named[1]
        except Exception as exc:  # noqa: BLE001 - looked at again later
            log.info("old master %s: baton_masters not read: %s", watch.instance, exc)
            return False
        if named:
            await self._finish(watch, fence, by="baton", reason="baton_masters names it master again")
        return named

    async def _exempt(self, key: InstanceKey) -> str | None:
        """Why a writable watched server must not be fenced: `named` (baton_masters names it master: the
        watch ends) or `promoting` (an open recovery is making it the master); None otherwise, and also
        when the answer does not come in time: then it is fenced (two writable masters are worse)."""
        answer, certain = await self._exempt_look(key)
        if not certain:
            log.warning("old master %s: cannot tell whether it is master again: fencing it", key)
        return answer

    async def _exempt_look(self, key: InstanceKey) -> tuple[str | None, bool]:
        """`_exempt`'s answer and whether it was read (False: the bus did not answer within the bound)."""

        async def named() -> bool:
            return self.named_masters is not None and key in await self.named_masters()

        async def promoting() -> bool:
            if self.records is None:
                return False
            for record in await self.records.open_records():
                planned = record.plan.successor if record.plan is not None else None
                if key in (record.successor, record.designated, planned):
                    return True
            return False

        try:
            async with asyncio.timeout(EXEMPT_TIMEOUT_S):
                is_named, is_promoting = await asyncio.gather(named(), promoting())
        except Exception as exc:  # noqa: BLE001 - fail safe: fence
            log.info("old master %s: baton_masters / open records not read (%s)", key, type(exc).__name__)
            return None, False
        if is_named:
            return "named", True
        return ("promoting" if is_promoting else None), True

    # -- audit -----------------------------------------------------------------------------------------
    async def _fenced(self, watch: FenceWatch, fence: Fence) -> RecoveryRecord:
        key, now = watch.instance, self.clock()
        note = (
            f"old master {key} came back writable; set read_only at {now.isoformat()} (epoch {fence.epoch})"
        )
        watch = watch.model_copy(update={"fenced": watch.fenced + 1, "last_fenced_at": now})
        self.watches[key] = watch
        log.warning("old master %s came back writable: set read_only (recovery %s)", key, watch.uid)
        if self.store is not None:
            try:
                fence.check()
                await self.store.put(watch)
            except LeadershipLost:
                raise
            except Exception as exc:  # noqa: BLE001 - the event and the record still say it
                log.warning("old master %s: fenced, but the watch could not be updated: %s", key, exc)

        def mark(stored: RecoveryRecord) -> bool:
            stored.fenced_at = now
            stored.errors.append(note)
            return True

        return await self._audit(watch, fence, "fenced", mark)

    async def _audit(
        self, watch: FenceWatch, fence: Fence, phase: str, mark: Callable[[RecoveryRecord], bool]
    ) -> RecoveryRecord:
        """Annotate the stored record (when it is still the cluster's latest) and publish `phase` with
        the record as annotated (else the watch's copy, annotated the same way)."""
        stored = None
        if self.records is not None:
            try:
                stored = await self.records.annotate(watch.recovery.alias, watch.uid, mark)
            except Exception as exc:  # noqa: BLE001 - the event still says it
                log.warning("old master %s: recovery %s not annotated: %s", watch.instance, watch.uid, exc)
        record = (stored or watch.recovery).model_copy(deep=True)
        if stored is None:
            mark(record)
        record.epoch = fence.epoch
        await self.events(record, phase)
        return record

    async def _finish(self, watch: FenceWatch, fence: Fence, *, by: str, reason: str) -> FenceWatch:
        """End a watch: persisted as ended (kept `ENDED_TTL_S`), audited as `fence-ended`."""
        now = self.clock()
        ended = watch.model_copy(update={"ended_at": now, "ended_by": by, "ended_reason": reason})
        fence.check()
        if self.store is not None:
            await self.store.put(ended)
        self.watches.pop(watch.instance, None)
        self._unsaved.discard(watch.instance)
        note = f"old master {watch.instance}: fence watch ended at {now.isoformat()} by {by}: {reason}"
        log.info("%s (recovery %s)", note, watch.uid)

        def mark(stored: RecoveryRecord) -> bool:
            stored.errors.append(note)
            return True

        await self._audit(ended, fence, "fence-ended", mark)
        return ended

    async def end(
        self,
        fence: Fence,
        *,
        by: str,
        reason: str,
        uid: str | None = None,
        instance: InstanceKey | None = None,
    ) -> list[InstanceKey]:
        """The operator ends the watch of recovery `uid` or of server `instance` (`ack-recoveries` naming
        it, libs/recovery/manual.py). Returns the servers no longer watched."""
        if self.store is not None and instance is not None and instance not in self.watches:
            stored = await self.store.get(instance)  # not loaded yet (the term just began)
            if stored is not None and stored.active:
                self.watches[instance] = stored
        targets = [
            w.instance
            for w in list(self.watches.values())
            if (uid is not None and w.uid == uid) or (instance is not None and w.instance == instance)
        ]
        done = []
        for key in targets:
            async with self._lock(key):  # not in the middle of a look at it
                watch = self.watches.get(key)
                if watch is None or not watch.active:
                    continue
                await self._finish(watch, fence, by=by, reason=reason)
                done.append(key)
        return done


def _ended(record: RecoveryRecord) -> datetime:
    return record.ended_at or record.started_at


async def tcp_open_any(key: InstanceKey, timeout_s: float, spacing_s: float, within_s: float) -> bool:
    """TCP connects to `key` started every `spacing_s` for `within_s`, each bounded by `timeout_s`: True
    as soon as one connects, False once all have failed."""
    tries: set[asyncio.Task[bool]] = set()
    now = time.monotonic()
    deadline, next_at = now + within_s, now
    try:
        while True:
            now = time.monotonic()
            if now >= next_at and now < deadline:
                tries.add(asyncio.create_task(tcp_open(key, timeout_s)))
                next_at = now + spacing_s
            elif not tries and now >= deadline:
                return False
            if not tries:
                await asyncio.sleep(max(0.0, next_at - now))
                continue
            wait = max(0.0, min(next_at, deadline) - time.monotonic()) if now < deadline else None
            done, _ = await asyncio.wait(tries, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                tries.discard(task)
                if task.result():
                    return True
    finally:
        for task in tries:
            task.cancel()
        if tries:
            await asyncio.wait(tries)


async def tcp_open(key: InstanceKey, timeout_s: float) -> bool:
    """Does `key` accept a TCP connection within `timeout_s`? (Refused, unreachable or silent: no.)"""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(key.host, key.port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
