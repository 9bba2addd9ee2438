"""One data center's publisher: a coalescing queue drained into one store, and a reconcile timer.

Each data center gets its own `DCWorker` (its own tasks, queue, backoff and status), so a Consul that
is down or hangs delays only its own data center. What the worker promises:
- the newest record of every cluster is published, retried with bounded exponential backoff for as
  long as it is the newest — every failed attempt is reported (`kv.failed`), none is given up;
- a record older than one already known (in baton_masters, waiting, or held by Consul) is never
  written: it is reported once as `kv.stale` and dropped (the Consul fence decides in the last
  instance: `publish_master` is one epoch-checked transaction);
- reconcile: at start, every `reconcile_seconds`, and as soon as the store answers again after
  failures, every cluster's keys are read and compared with baton_masters; any difference is queued.
  A reconcile that cannot read the store is retried with backoff (≤ `backoff.maximum` seconds), so a
  Consul that comes back is caught up within that bound even when nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from libs.aio import checkpoint
from libs.errors import KVError, StaleEpoch
from libs.kv.base import MasterKVStore, PublishOutcome
from libs.kv.layout import cluster_alias
from libs.models.events import Event, MasterRecord, utcnow
from services.kvpublisher import audit_events
from services.kvpublisher.backoff import Backoff
from services.kvpublisher.pending import Offer, Pending, PendingQueue
from services.kvpublisher.status import DCStatus
from services.kvpublisher.verdict import Verdict, judge

log = logging.getLogger(__name__)

Report = Callable[[Event], None]
RECONCILE_GIVE_UP_AFTER = 3  # consecutive read failures: the store is down, stop this pass


class DCWorker:
    """Publishes baton_masters records to one data center's store. `run()` until cancelled."""

    def __init__(
        self,
        store: MasterKVStore,
        *,
        prefix: str,
        records: Mapping[str, MasterRecord],
        report: Report,
        node: str,
        reconcile_seconds: float = 30.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dc = store.datacenter
        self._store = store
        self._prefix = prefix
        self._records = records  # the newest record per baton_masters key (owned by the service)
        self._report = report
        self._node = node
        self._reconcile_seconds = reconcile_seconds
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._queue = PendingQueue(self._backoff)
        self._wake = asyncio.Event()
        self._reconcile_now = asyncio.Event()
        self._dc_failures = 0
        self._ahead_reported: set[tuple[str, int]] = set()
        self.state = DCStatus(dc=self.dc, store=repr(store))

    def status(self) -> dict[str, Any]:
        self.state.pending = len(self._queue)
        return self.state.as_dict()

    # ---- intake (synchronous: called from the watcher and from reconcile) ------------------------

    def offer(self, key: str, record: MasterRecord, trigger: str = "watch") -> Offer | None:
        """Queue a record for publishing; None if it can never be published (reported as failed)."""
        now = self._clock()
        try:
            cluster_alias(record)
        except ValueError as exc:
            self._failed_for_good(record, trigger, str(exc))
            return None
        newest = self._records.get(key)
        if newest is not None and newest.epoch > record.epoch:
            reason = f"baton_masters already holds epoch {newest.epoch} for this cluster"
            self._stale(record, trigger, now, reason, newest.epoch)
            return Offer.SUPERSEDED
        verdict = self._queue.offer(key, record, now, trigger)
        if verdict is Offer.SUPERSEDED:
            self._stale(record, trigger, now, "a record with a newer epoch is being published", None)
        elif verdict in (Offer.QUEUED, Offer.REPLACED):
            self._wake.set()
        self.state.pending = len(self._queue)
        return verdict

    def forget(self, key: str) -> None:
        self._queue.forget(key)
        self.state.pending = len(self._queue)

    def reconcile_soon(self) -> None:
        self._reconcile_now.set()

    # ---- the loops -------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._publish_loop(), name=f"kv-publish-{self.dc}")
            tasks.create_task(self._reconcile_loop(), name=f"kv-reconcile-{self.dc}")

    async def _publish_loop(self) -> None:
        while True:
            self._wake.clear()
            entry = self._queue.take(self._clock())
            if entry is None:
                await _wait(self._wake, self._queue.next_due(self._clock()))
                continue
            await self._publish(entry)
            checkpoint()
            if self._dc_failures:  # the store failed: pause the whole DC, not just this cluster
                await asyncio.sleep(self._backoff.delay(self._dc_failures, random.random()))

    async def _reconcile_loop(self) -> None:
        failures = 0
        while True:
            self._reconcile_now.clear()
            try:
                ok = await self.reconcile_once()
            except Exception:  # a bug must not end reconciling for good
                log.exception("kvpublisher %s: reconcile crashed", self.dc)
                ok = False
            checkpoint()
            failures = 0 if ok else failures + 1
            wait = self._reconcile_seconds if ok else self._backoff.delay(failures, random.random())
            await _wait(self._reconcile_now, wait)

    # ---- one publish -----------------------------------------------------------------------------

    async def _publish(self, entry: Pending) -> None:
        record = entry.record
        try:
            result = await self._store.publish_master(record, self._prefix)
        except StaleEpoch as exc:
            self._queue.done(entry)
            self._dc_failures = 0
            self._stale(record, entry.trigger, entry.since, str(exc), None)
        except KVError as exc:
            self._failed(entry, str(exc))
        except Exception as exc:  # a library surprise must not end the worker
            log.exception("kvpublisher %s: publish of %s crashed", self.dc, record.cluster)
            self._failed(entry, f"{type(exc).__name__}: {exc}")
        else:
            self._queue.done(entry)
            recovered = self._dc_failures > 0
            self._dc_failures = 0
            written = result.outcome is PublishOutcome.WRITTEN
            self.state.success(utcnow(), record.cluster, result.value, record.epoch, written=written)
            if written:
                self._report(
                    audit_events.published_event(
                        self.dc,
                        record,
                        result,
                        prefix=self._prefix,
                        latency_ms=self._ms_since(entry.since),
                        trigger=entry.trigger,
                        node=self._node,
                    )
                )
            if recovered:
                log.info("kvpublisher %s: store answers again; reconciling now", self.dc)
                self._reconcile_now.set()
        self.state.pending = len(self._queue)

    def _failed(self, entry: Pending, error: str) -> None:
        self._dc_failures += 1
        retry_in = self._queue.failed(entry, self._clock(), random.random())
        self.state.failure(utcnow(), entry.record.cluster, error)
        log.warning("kvpublisher %s: %s (retry in %ss)", self.dc, error, retry_in)
        self._report(
            audit_events.failed_event(
                self.dc,
                entry.record,
                error,
                prefix=self._prefix,
                latency_ms=self._ms_since(entry.since),
                trigger=entry.trigger,
                node=self._node,
                attempt=entry.attempts + 1,
                retry_in_s=None if retry_in is None else round(retry_in, 3),
            )
        )

    def _failed_for_good(self, record: MasterRecord, trigger: str, error: str) -> None:
        self.state.failure(utcnow(), record.cluster, error)
        self._report(
            audit_events.failed_event(
                self.dc,
                record,
                error,
                prefix=self._prefix,
                latency_ms=0.0,
                trigger=trigger,
                node=self._node,
                attempt=1,
                retry_in_s=None,
            )
        )

    def _stale(
        self, record: MasterRecord, trigger: str, since: float, reason: str, newer: int | None
    ) -> None:
        self.state.refused_stale()
        log.info("kvpublisher %s: stale record for %s refused: %s", self.dc, record.cluster, reason)
        self._report(
            audit_events.stale_event(
                self.dc,
                record,
                reason,
                prefix=self._prefix,
                latency_ms=self._ms_since(since),
                trigger=trigger,
                node=self._node,
                newer_epoch=newer,
            )
        )

    def _ms_since(self, since: float) -> float:
        return (self._clock() - since) * 1000.0

    # ---- reconcile -------------------------------------------------------------------------------

    async def reconcile_once(self) -> bool:
        """Compare every cluster's keys in this store with baton_masters; queue the differences.

        Returns False if the store could not be read (the pass stops after a few failures in a row).
        """
        checked = repairs = errors = in_a_row = 0
        ahead: list[str] = []
        last_error: str | None = None
        for key in list(self._records):
            record = self._records.get(key)
            if record is None:
                continue
            try:
                alias = cluster_alias(record)
            except ValueError:
                continue  # reported when it was offered; it cannot name a key
            try:
                published = await self._store.read_cluster(self._prefix, alias)
                checkpoint()
            except KVError as exc:
                errors += 1
                in_a_row += 1
                last_error = str(exc)
                if in_a_row >= RECONCILE_GIVE_UP_AFTER:
                    break
                continue
            in_a_row = 0
            checked += 1
            record = self._records.get(key)  # the newest, after the await
            if record is None:
                continue
            verdict = judge(published, record, self._prefix)
            if verdict is Verdict.REPAIR:
                if self.offer(key, record, trigger="reconcile") in (Offer.QUEUED, Offer.REPLACED):
                    repairs += 1
            elif verdict is Verdict.AHEAD and published is not None:
                ahead.append(record.cluster)
                if (key, record.epoch) not in self._ahead_reported:
                    self._ahead_reported.add((key, record.epoch))
                    reason = (
                        f"{self.dc} holds epoch {published.epoch}, newer than baton_masters' {record.epoch}"
                    )
                    self._stale(record, "reconcile", self._clock(), reason, published.epoch)
        error = f"{errors} read(s) failed: {last_error}" if last_error else None
        self.state.reconciled(utcnow(), checked=checked, repairs=repairs, ahead=ahead, error=error)
        if repairs:
            log.info("kvpublisher %s: reconcile queued %d repair(s)", self.dc, repairs)
        return errors == 0


async def _wait(event: asyncio.Event, seconds: float | None) -> None:
    """Until `event` is set or `seconds` pass (None: no limit). `asyncio.timeout`, not `wait_for`:
    on 3.11 the latter can swallow a cancellation (see `cancel.py`)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
