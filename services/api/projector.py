"""The projector: JetStream → read model, one ordered consumer per stream, resumable from the cursor.

For each stream (snapshots, detections, recoveries, audit) an ordered push consumer starts right after
the stored cursor; messages are applied in batches (`libs.store.projection.apply_batch`, one
transaction each, the cursor inside it). A batch that fails (database down) is retried until it
succeeds, so nothing is skipped. After each commit the fleet is updated and new events go to SSE.

A cursor beyond the stream's last sequence means the stream was recreated (new broker store): the
projection of that stream restarts from its beginning (the upserts make that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from libs.aio import cancel_all
from libs.bus.messages import Consumer
from libs.store import Store
from libs.store import projection as proj
from libs.telemetry import instruments
from services.api.fleet_views import Fleet
from services.api.hub import Hub, LiveEvent

log = logging.getLogger(__name__)

SUBJECTS = {
    proj.SNAPSHOTS: "baton.snapshot.>",
    proj.DETECTIONS: "baton.detection.>",
    proj.RECOVERIES: "baton.recovery.>",
    proj.AUDIT: "baton.audit.>",
}
BATCH = 500
QUEUE = 20_000
RETRY_S = 1.0


@dataclass
class StreamState:
    stream: str
    cursor: int = 0
    target: int = 0  # the stream's last sequence when we started: caught up once cursor reaches it
    applied: int = 0
    rejected: int = 0
    last_error: str | None = None
    # each message with its JetStream store time (epoch seconds): the read-model lag at commit
    queue: asyncio.Queue[tuple[proj.Message, float]] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def as_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "cursor": self.cursor,
            "start_target": self.target,
            "caught_up": self.caught_up.is_set(),
            "applied": self.applied,
            "rejected": self.rejected,
            "pending": self.queue.qsize(),
            "last_error": self.last_error,
        }


class Projector:
    def __init__(
        self,
        js: JetStreamContext,
        store: Store,
        fleet: Fleet,
        hub: Hub,
        *,
        on_applied: Callable[[], None] | None = None,
    ) -> None:
        self.js, self.store, self.fleet, self.hub = js, store, fleet, hub
        self.on_applied = on_applied
        self.streams = {name: StreamState(name) for name in SUBJECTS}
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lag = instruments().readmodel_lag

    async def start(self) -> None:
        for name, state in self.streams.items():
            state.cursor = await proj.get_cursor(self.store, name)
            try:
                info = await self.js.stream_info(name)
                last = int(info.state.last_seq)
            except nats.js.errors.NotFoundError:
                last = 0
            if state.cursor > last:
                log.warning(
                    "projector: %s cursor %d is beyond the stream (%d): replaying it",
                    name,
                    state.cursor,
                    last,
                )
                await proj.set_cursor(self.store, name, 0)
                state.cursor = 0
            state.target = last
            if state.cursor >= last:
                state.caught_up.set()
            self._tasks.append(asyncio.create_task(self._write(state), name=f"project {name}"))
            self._consumers.append(await self._subscribe(state))

    async def _subscribe(self, state: StreamState) -> Consumer:
        async def on_msg(msg: Msg) -> None:
            meta = msg.metadata
            message = proj.Message(seq=meta.sequence.stream, subject=msg.subject, data=msg.data)
            await state.queue.put((message, meta.timestamp.timestamp()))

        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=state.cursor + 1
        )
        sub = await self.js.subscribe(SUBJECTS[state.stream], cb=on_msg, ordered_consumer=True, config=config)
        return Consumer(sub)

    async def _write(self, state: StreamState) -> None:
        while True:
            first = await state.queue.get()
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(state.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._apply(state, [m for m, _ in batch])
            self._lag.set(max(0.0, time.time() - batch[-1][1]), {"stream": state.stream})

    async def _apply(self, state: StreamState, batch: list[proj.Message]) -> None:
        while True:
            started = time.perf_counter()
            try:
                result = await proj.apply_batch(self.store, state.stream, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the batch and retry: nothing may be skipped
                state.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("projector: %s batch failed, retrying: %s", state.stream, state.last_error)
                await asyncio.sleep(RETRY_S)
                continue
            break
        state.last_error = None
        state.cursor = result.cursor
        state.applied += len(batch) - result.skipped - result.rejected
        state.rejected += result.rejected
        if result.instances:
            self.fleet.update(result.instances)
        if result.events:
            self.hub.publish(
                [
                    LiveEvent(id=r.id or 0, type=r.type, cluster=r.cluster, payload=r.payload)
                    for r in result.events
                ]
            )
        if state.cursor >= state.target:
            state.caught_up.set()
        if self.on_applied is not None:
            self.on_applied()
        log.debug(
            "projector: %s +%d in %.1f ms", state.stream, len(batch), (time.perf_counter() - started) * 1e3
        )

    async def wait_caught_up(self, within_s: float = 30.0) -> None:
        async with asyncio.timeout(within_s):
            for state in self.streams.values():
                await state.caught_up.wait()

    async def stop(self) -> None:
        for consumer in self._consumers:
            with contextlib.suppress(nats.errors.Error):
                await consumer.stop()
        self._consumers.clear()
        await cancel_all(self._tasks)
        self._tasks.clear()

    def status(self) -> list[dict[str, object]]:
        return [s.as_dict() for s in self.streams.values()]
