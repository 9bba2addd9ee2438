"""One probe task per owned instance, each on its own fixed cadence.

Every instance's task probes at `start + n * poll_s` (the loop's monotonic clock, so the cadence never
drifts), except that a replica whose heartbeat period equals the poll has its slots moved to land just
after its heartbeats arrive (`libs/topology/heartbeat_phase.py`: its silence is then measured tightly
when its master hangs; the average rate is unchanged); a probe that overruns its slot (a dead host
waiting out its connect/read timeout) skips the slots it missed instead of firing a burst. Tasks share
nothing but the connection pool (one connection per instance) and the NATS client, so a dead or hung host
costs at most its own timeout and never delays another instance's probe. `wake(key)` brings an instance's
next probe forward to now (the liveness watch uses it); `probe_once(key)` probes on demand (probe-now)
and publishes like any other probe; `report_unanswered(key, reason)` publishes an unreachable snapshot
for a statement the instance left unanswered past its bound (the liveness watch's, on a hung server).

Each probe runs in a `probe` span; the snapshot goes to `baton.snapshot.<token>` (the span's context
travels in the headers), then to `on_snapshot` (discovery, liveness). The regular probes do not wait for
their JetStream ack: up to `publish_max_in_flight` snapshots are in flight, and at that bound the next
probe waits for acks (back-pressure). An ack that fails or does not come within `publish_timeout_s` is
counted and logged like a failed publish; the instance's next probe publishes a fresh snapshot. Probe-now
and the liveness watch's reports wait for their ack (`publish_max_in_flight` 0: every probe does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from nats.js import JetStreamContext
from opentelemetry import trace

from libs.aio import cancel_all
from libs.bus.connection import bus_errors, describe
from libs.bus.messages import publish_model
from libs.bus.subjects import snapshot_subject
from libs.errors import BusError
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.mysql import ConnectionPool, probe
from libs.telemetry import instruments, tracer
from libs.telemetry.propagation import inject_headers
from libs.topology.heartbeat_phase import HeartbeatPhase
from services.prober.config import ProberConfig

log = logging.getLogger(__name__)
_tracer = tracer("baton.prober")

Normalizer = Callable[[InstanceKey, InstanceSnapshot], InstanceSnapshot]


class _Sleeper:
    """A sleep that `wake()` can cut short, without a task per wait (cheap at thousands of instances)."""

    __slots__ = ("_fut", "_woken")

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None
        self._woken = False

    async def until(self, when: float) -> None:
        """Sleep until loop time `when`, or less if woken."""
        if self._woken:
            self._woken = False
            return
        loop = asyncio.get_running_loop()
        fut = self._fut = loop.create_future()
        handle = loop.call_at(when, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._fut = None

    def wake(self) -> None:
        if self._fut is not None:
            _resolve(self._fut)
        else:
            self._woken = True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ProbeLoop:
    """The probe tasks of the instances this worker owns."""

    def __init__(
        self,
        config: ProberConfig,
        js: JetStreamContext,
        *,
        pool: ConnectionPool | None = None,
        normalize: Normalizer | None = None,
        on_snapshot: Callable[[InstanceSnapshot], None] | None = None,
    ) -> None:
        self.config = config
        self.js = js
        self.pool = pool or ConnectionPool(
            connect_timeout=config.probe.connect_timeout, read_timeout=config.probe.read_timeout
        )
        self.normalize = normalize
        self.on_snapshot = on_snapshot
        self.tasks: dict[InstanceKey, asyncio.Task[None]] = {}
        self.sleepers: dict[InstanceKey, _Sleeper] = {}
        self._reports: set[asyncio.Task[None]] = set()
        self.probes = 0  # probes completed (published or not): tests and metrics read it
        self.publish_failures = 0
        self._metrics = instruments()
        self._publish_warned = False
        # snapshots published without waiting for their ack: future -> (instance, ack deadline)
        self._acks: dict[asyncio.Future[Any], tuple[InstanceKey, float]] = {}
        self._room = asyncio.Semaphore(max(1, config.publish_max_in_flight))
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def owned(self) -> frozenset[InstanceKey]:
        return frozenset(self.tasks)

    def set_owned(self, keys: Iterable[InstanceKey]) -> None:
        """Start tasks for newly owned instances and cancel those no longer owned, synchronously: when
        this returns, no probe of a dropped instance will publish again."""
        wanted = set(keys)
        for key in [k for k in self.tasks if k not in wanted]:
            self.tasks.pop(key).cancel()
            self.sleepers.pop(key, None)
            self.pool.discard(key)
        for key in wanted - self.tasks.keys():
            self.sleepers[key] = _Sleeper()
            self.tasks[key] = asyncio.get_running_loop().create_task(self._run(key), name=f"probe {key}")

    def wake(self, key: InstanceKey) -> None:
        """Probe `key` now instead of at its next slot (no-op when not owned)."""
        sleeper = self.sleepers.get(key)
        if sleeper is not None:
            sleeper.wake()

    async def stop(self) -> None:
        tasks = [*self.tasks.values(), *self._reports]
        self.set_owned(())
        await cancel_all(tasks)
        if self._acks:  # what is in flight gets its ack (or its timeout) before the connection goes
            await asyncio.wait(list(self._acks), timeout=self.config.publish_timeout_s)
        await cancel_all([t for t in (self._sweeper,) if t is not None])
        for fut in list(self._acks):
            fut.cancel()
        self.pool.close()

    @property
    def in_flight(self) -> int:
        """Snapshots published whose ack has not come yet."""
        return len(self._acks)

    async def _run(self, key: InstanceKey) -> None:
        period = self.config.poll_s
        sleeper = self.sleepers[key]
        loop = asyncio.get_running_loop()
        phase = HeartbeatPhase(period)
        next_at = loop.time()
        while True:
            started = loop.time()
            try:
                snap = await self.probe_once(key, wait_ack=self.config.publish_max_in_flight == 0)
                if started >= next_at:  # a regular slot (not a wake): its place against the heartbeats
                    next_at += phase.after_poll(snap, started)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end this instance's probing
                log.exception("probe loop of %s failed", key)
            now = loop.time()
            if next_at <= now:  # next slot; after an overrun skip the missed ones, keep the phase
                next_at += period * (int((now - next_at) / period) + 1)
            await sleeper.until(next_at)  # a wake() probes early; the regular slot stays

    def report_unanswered(self, key: InstanceKey, reason: str) -> None:
        """An owned instance left a statement unanswered past its bound (the liveness watch): publish an
        unreachable snapshot now (2013, like a read timeout) instead of after the probe queued behind
        the one already waiting on it. Its next probe that answers takes over, as after any failure."""
        if key not in self.tasks:
            return
        error = f"Lost connection to MySQL server: {reason}"
        snap = InstanceSnapshot.unreachable(key, utcnow(), error, code=2013, prober=self.config.worker_id)
        if self.normalize is not None:
            snap = self.normalize(key, snap)
        task = asyncio.get_running_loop().create_task(self._report(snap), name=f"unanswered {key}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, snap: InstanceSnapshot) -> None:
        await self._publish(snap)
        self._metrics.probe_errors.add(1, {"reason": "unanswered"})
        if self.on_snapshot is not None:
            self.on_snapshot(snap)

    async def probe_once(self, key: InstanceKey, *, wait_ack: bool = True) -> InstanceSnapshot:
        """Probe `key` now, publish its snapshot, hand it to `on_snapshot`; return it. Without
        `wait_ack` the publish does not wait for the JetStream ack (see the module docstring)."""
        with _tracer.start_as_current_span("probe", kind=trace.SpanKind.INTERNAL) as span:
            if span.is_recording():
                span.set_attribute("baton.instance", str(key))
            snap = await probe(
                key, self.config.credentials, self.config.probe, pool=self.pool, prober=self.config.worker_id
            )
            if self.normalize is not None:
                snap = self.normalize(key, snap)
            self._metrics.probe_latency.record(snap.latency_ms / 1000.0)
            if wait_ack:
                await self._publish(snap)
            else:
                await self._publish_nowait(snap)
        self.probes += 1
        self._metrics.probes.add(1)
        if not snap.reachable or snap.partial:
            self._metrics.probe_errors.add(1, {"reason": "unreachable" if not snap.reachable else "partial"})
        if self.on_snapshot is not None:
            self.on_snapshot(snap)
        return snap

    async def _publish(self, snap: InstanceSnapshot) -> None:
        try:
            await publish_model(
                self.js,
                snapshot_subject(snap.key),
                snap,
                request_timeout_s=self.config.publish_timeout_s,
            )
            self._publish_warned = False
        except BusError as exc:
            self._publish_failed(str(exc))

    def _publish_failed(self, why: str) -> None:
        self.publish_failures += 1
        self._metrics.probe_errors.add(1, {"reason": "publish"})
        if not self._publish_warned:  # once per outage, not once per probe
            log.warning("cannot publish snapshots: %s", why)
            self._publish_warned = True

    async def _publish_nowait(self, snap: InstanceSnapshot) -> None:
        """Publish `snap` and return once it is sent, with at most `publish_max_in_flight` snapshots
        awaiting their ack: at the bound, wait for room (back-pressure on the probe loops)."""
        await self._room.acquire()
        subject = snapshot_subject(snap.key)
        try:
            with bus_errors(f"publishing to {subject}"):
                fut = await self.js.publish_async(
                    subject, snap.model_dump_json().encode(), headers=inject_headers({})
                )
        except BusError as exc:
            self._room.release()
            self._publish_failed(str(exc))
            return
        except BaseException:
            self._room.release()
            raise
        loop = asyncio.get_running_loop()
        self._acks[fut] = (snap.key, loop.time() + self.config.publish_timeout_s)
        fut.add_done_callback(self._acked)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="publish ack timeouts")

    def _acked(self, fut: asyncio.Future[Any]) -> None:
        key, _deadline = self._acks.pop(fut, (None, 0.0))
        self._room.release()
        if fut.cancelled():
            self._publish_failed(f"{key}: no JetStream ack within {self.config.publish_timeout_s:g}s")
        elif (exc := fut.exception()) is not None:
            self._publish_failed(f"{key}: {describe(exc)}")
        else:
            self._publish_warned = False

    async def _sweep(self) -> None:
        """Give up on acks past their deadline (nats-py's futures have none): they count as failed."""
        loop = asyncio.get_running_loop()
        while self._acks:
            await asyncio.sleep(min(1.0, self.config.publish_timeout_s / 2))
            now = loop.time()
            for fut in [f for f, (_k, deadline) in self._acks.items() if deadline <= now]:
                fut.cancel()
