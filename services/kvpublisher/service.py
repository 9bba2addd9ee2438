"""The kvpublisher service: baton_masters → every data center's master-discovery store.

Wiring only: one KV watch on `baton_masters` feeds the newest record per cluster into one `DCWorker`
per data center; events go out through a bounded outbox, so a slow or absent NATS never blocks a
worker; `baton.cmd.kvpublisher.status` is answered with `status()`, and
`baton.cmd.kvpublisher.reconcile` makes every worker reconcile now (the recovery leader asks after
`submit-masters-to-kv-stores`, so a Consul that lost its keys gets them back even when baton_masters did
not change); both have no queue group: every kvpublisher process answers.

Start-up order matters for correctness after a restart: the watch first delivers the current value of
every key (no history); only once those are all in (the watcher's end-of-initial-values marker) do the
workers start, and each begins with a reconcile against that complete picture. Later changes are
offered to every worker as they arrive.

The watch guard bounds a stalled watch: nats-py's watch is an ordered consumer that, after its NATS
server restarted or rejoined its cluster, resumes only once it misses an idle heartbeat (a record
reached Consul 17-19 s late). Every `WATCH_GUARD_S` the guard reads the bucket's last sequence (one
stream-info request); when it is ahead of the newest revision the watch delivered and still is a
moment later, it reads the bucket (`kvread.scan`) and applies what the watch missed (newer epochs
only, as always). Deletes are left to the watch (Consul keys of a deleted cluster stay anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from libs.aio import cancel_and_wait, checkpoint
from libs.bus import kvread
from libs.bus.connection import Bus, bus_errors, connect
from libs.bus.messages import publish_event
from libs.bus.provision import MASTERS, provision
from libs.bus.subjects import audit_subject, cmd_subject
from libs.config import Settings
from libs.config.derive import nats_security
from libs.errors import BusError
from libs.kv.base import MasterKVStore
from libs.kv.consul import DEFAULT_TIMEOUT
from libs.models.events import NODE_NAME, Event, MasterRecord
from libs.models.operator import KV_RECONCILE
from libs.service_main import Serve, require_nats
from libs.telemetry import instruments
from services.kvpublisher.audit_events import AUDIT_KIND, FAILED, PUBLISHED, SOURCE, STALE
from services.kvpublisher.backoff import Backoff
from services.kvpublisher.config import build_stores, reconcile_seconds, select_data_centers
from services.kvpublisher.worker import DCWorker

log = logging.getLogger(__name__)

STATUS_SUBJECT = cmd_subject(SOURCE, "status")
RECONCILE_SUBJECT = cmd_subject(SOURCE, KV_RECONCILE)
EVENT_SUBJECT = audit_subject(AUDIT_KIND)
OUTBOX_SIZE = 10_000
EVENT_SEND_TRIES = 3
WATCH_GUARD_S = 2.0  # how often the watch is checked against the bucket's last sequence
WATCH_GRACE_S = 0.3  # a shortfall must outlast this (a delivery in flight is not a stall)
_LAG_RESULTS = {PUBLISHED: "published", FAILED: "failed", STALE: "stale"}  # baton_kv_publish_lag_seconds


class KVPublisher:
    """Publishes every cluster's master from baton_masters to each store in `stores`.

    The stores are owned by the caller (it closes them); `run()` runs until cancelled and cleans up
    what it started.
    """

    def __init__(
        self,
        bus: Bus,
        stores: Mapping[str, MasterKVStore],
        *,
        prefix: str,
        reconcile_seconds: float = 30.0,
        backoff: Backoff | None = None,
        node: str = NODE_NAME,
    ) -> None:
        if not stores:
            raise ValueError("a kvpublisher needs at least one data center")
        self._bus = bus
        self._prefix = prefix
        self._reconcile_seconds = reconcile_seconds
        self._node = node
        self._records: dict[str, MasterRecord] = {}
        self._outbox: asyncio.Queue[Event] = asyncio.Queue(OUTBOX_SIZE)
        self._dropped_events = 0
        self._ready = asyncio.Event()
        self._seen_revision = 0  # the newest baton_masters revision applied (watch or guard)
        self.watch_catch_ups = 0  # times the guard found the watch behind and read the bucket
        self._lag = instruments().kv_publish_lag
        self.workers = {
            dc: DCWorker(
                store,
                prefix=prefix,
                records=self._records,
                report=self._emit,
                node=node,
                reconcile_seconds=reconcile_seconds,
                backoff=backoff,
            )
            for dc, store in stores.items()
        }

    # ---- what others read --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per-DC publishing status (JSON-ready): what the API shows and the status command answers."""
        return {
            "node": self._node,
            "ready": self._ready.is_set(),
            "prefix": self._prefix,
            "reconcile_seconds": self._reconcile_seconds,
            "clusters": len(self._records),
            "dropped_events": self._dropped_events,
            "dcs": {dc: worker.status() for dc, worker in self.workers.items()},
        }

    async def wait_ready(self) -> None:
        """Returns once the initial values are in and the workers have started."""
        await self._ready.wait()

    # ---- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        with bus_errors("opening KV bucket baton_masters"):
            kv = await self._bus.js.key_value(MASTERS)
            watcher = await kv.watchall(include_history=False)
        subs: list[Subscription] = []
        try:
            subs.append(await self._bus.nc.subscribe(STATUS_SUBJECT, cb=self._answer_status))
            subs.append(await self._bus.nc.subscribe(RECONCILE_SUBJECT, cb=self._reconcile_now))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._send_events(), name="kv-events")
                tasks.create_task(self._guard_watch(), name="kv-watch-guard")
                await self._watch(watcher, tasks)
        finally:
            with contextlib.suppress(nats.errors.Error, BusError):
                await watcher.stop()  # type: ignore[no-untyped-call]
            for sub in subs:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
            await self._flush_events(within_s=1.0)

    async def _watch(self, watcher: KeyValue.KeyWatcher, tasks: asyncio.TaskGroup) -> None:
        async for entry in watcher:
            if entry is None:  # end of the initial values: start the workers (reconcile first)
                if not self._ready.is_set():
                    log.info("kvpublisher: %d cluster(s) in baton_masters; starting", len(self._records))
                    for dc, worker in self.workers.items():
                        tasks.create_task(worker.run(), name=f"kv-dc-{dc}")
                    self._ready.set()
                continue
            self._on_entry(entry)
        raise BusError("the baton_masters watch ended")

    async def _guard_watch(self) -> None:
        """Catch up on what a stalled watch missed (see the module doc)."""
        while True:
            await asyncio.sleep(WATCH_GUARD_S)
            checkpoint()
            if not self._ready.is_set():
                continue
            try:
                last = await self._last_revision()
                if last <= self._seen_revision:
                    continue
                await asyncio.sleep(WATCH_GRACE_S)
                if last <= self._seen_revision:
                    continue  # it was in flight
                entries = await kvread.scan(self._bus.js, MASTERS)
            except (BusError, nats.errors.Error, TimeoutError) as exc:
                log.debug("kvpublisher: watch guard: %s", exc)
                continue
            self.watch_catch_ups += 1
            log.warning(
                "kvpublisher: the baton_masters watch is behind (revision %d of %d): read the bucket",
                self._seen_revision,
                last,
            )
            for entry in entries:
                if entry.revision > self._seen_revision:
                    self._apply(entry.key, entry.value, entry.revision)
            self._seen_revision = max(self._seen_revision, last)

    async def _last_revision(self) -> int:
        with bus_errors("reading baton_masters' last sequence"):
            info = await self._bus.js.stream_info(f"KV_{MASTERS}")
        return int(info.state.last_seq or 0)

    def _on_entry(self, entry: KeyValue.Entry) -> None:
        key = entry.key
        if entry.operation in (KV_DEL, KV_PURGE):
            self._seen_revision = max(self._seen_revision, entry.revision or 0)
            self._records.pop(key, None)
            for worker in self.workers.values():
                worker.forget(key)
            log.info("kvpublisher: cluster %s left baton_masters; its Consul keys stay", key)
            return
        self._apply(key, entry.value or b"", entry.revision or 0)

    def _apply(self, key: str, value: bytes, revision: int) -> None:
        self._seen_revision = max(self._seen_revision, revision)
        try:
            record = MasterRecord.model_validate_json(value)
        except ValidationError as exc:
            log.error("kvpublisher: baton_masters/%s is not a MasterRecord: %s", key, exc.errors()[0])
            return
        known = self._records.get(key)
        if known is None or record.epoch >= known.epoch:
            self._records[key] = record
        if self._ready.is_set():
            for worker in self.workers.values():
                worker.offer(key, record)

    # ---- events and the status command ---------------------------------------------------------

    def _emit(self, event: Event) -> None:
        result = _LAG_RESULTS.get(event.type)
        if result is not None:  # the publish lag of one record in one DC, by how it ended
            self._lag.record(event.data["latency_ms"] / 1000.0, {"dc": event.data["dc"], "result": result})
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped_events += 1
            log.warning("kvpublisher: event outbox full; dropped %s for %s", event.type, event.cluster)

    async def _send_events(self) -> None:
        while True:
            event = await self._outbox.get()
            await self._send(event)
            checkpoint()  # nats-py's publish may have swallowed our cancellation

    async def _send(self, event: Event) -> None:
        for attempt in range(1, EVENT_SEND_TRIES + 1):
            try:
                await publish_event(self._bus.js, EVENT_SUBJECT, event)
                return
            except BusError as exc:
                if attempt == EVENT_SEND_TRIES:
                    self._dropped_events += 1
                    log.warning("kvpublisher: could not publish %s event: %s", event.type, exc)
                else:
                    checkpoint()
                    await asyncio.sleep(0.2 * attempt)

    async def _flush_events(self, within_s: float) -> None:
        """Send what the outbox still holds, for at most `within_s` seconds (at shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while not self._outbox.empty():
                    await self._send(self._outbox.get_nowait())

    async def _answer_status(self, msg: Msg) -> None:
        if not msg.reply:
            return
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(json.dumps(self.status()).encode())

    async def _reconcile_now(self, msg: Msg) -> None:
        """Every worker reconciles now (a worker not started yet reconciles first anyway)."""
        for worker in self.workers.values():
            worker.reconcile_soon()
        log.info("kvpublisher: reconcile requested")
        if msg.reply:
            answer = {"node": self._node, "ready": self._ready.is_set(), "dcs": sorted(self.workers)}
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(json.dumps(answer).encode())


def serve_with(
    *, dcs: Sequence[str] = (), reconcile: float | None = None, consul_timeout: float = DEFAULT_TIMEOUT
) -> Serve:
    """A `serve(settings, stop)` (libs.service_main) for the given DCs (default: all configured)."""

    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        require_nats(settings, "kvpublisher")
        data_centers = select_data_centers(settings, dcs)
        period = reconcile_seconds(settings, reconcile)
        stores = build_stores(data_centers, timeout=consul_timeout)
        try:
            async with await connect(
                settings.BatonNatsURLs,
                f"kvpublisher-{settings.BatonNodeName}",
                security=nats_security(settings),
            ) as bus:
                await provision(bus.js, settings.BatonStreamReplicas)
                publisher = KVPublisher(
                    bus,
                    stores,
                    prefix=settings.KVClusterMasterPrefix,
                    reconcile_seconds=period,
                    node=settings.BatonNodeName,
                )
                log.info("kvpublisher: serving %s (reconcile every %gs)", ", ".join(stores), period)
                running = asyncio.create_task(publisher.run(), name="kvpublisher")
                stopping = asyncio.create_task(stop.wait())
                try:
                    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    if not running.done():
                        log.info("kvpublisher: stopping")
                    await cancel_and_wait(running)
                failure = None if running.cancelled() else running.exception()
                if failure is not None:
                    raise failure
        finally:
            for store in stores.values():
                await store.close()

    return serve


serve = serve_with()
