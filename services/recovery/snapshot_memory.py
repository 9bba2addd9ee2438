"""What the recovery remembers of the fleet: the latest and the last successful snapshot per instance.

The re-check probes the failed master and its replicas fresh, but a dead master answers nothing: its
place, data center and binlog format come from its last successful snapshot, which this memory keeps
(from `BATON_SNAPSHOTS`, replayed from the start of its retention, then followed live). Every recovery
process keeps it, leader or not, so a new leader starts warm.
"""

from __future__ import annotations

from collections.abc import Mapping

from nats.js import JetStreamContext, api
from opentelemetry.context import Context

from libs.bus.messages import Consumer, consume
from libs.bus.subjects import SNAPSHOTS_ALL
from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.context import HistoryRecorder
from libs.topology.view import InstanceState, fold


class SnapshotMemory:
    def __init__(self) -> None:
        self.states: dict[InstanceKey, InstanceState] = {}
        self.received = 0
        # what the analyzer also keeps (binlog coordinates, the replicas' received marks): the re-check
        # must see a hung master's silent replicas as the analyzer did, or it calls the failure fixed
        self._recorder = HistoryRecorder()
        self.history = self._recorder.history
        self._consumer: Consumer | None = None

    def add(self, snapshot: InstanceSnapshot) -> None:
        self.received += 1
        self._recorder.observe(snapshot)
        state = self.states.get(snapshot.key)
        if state is not None and snapshot.probed_at < state.last_probe.probed_at:
            if snapshot.reachable and (
                state.last_seen is None or state.last_seen.probed_at < snapshot.probed_at
            ):
                self.states[snapshot.key] = state.model_copy(update={"last_seen": snapshot})
            return
        self.states[snapshot.key] = fold(state, snapshot)

    def __call__(self) -> Mapping[InstanceKey, InstanceState]:
        return self.states

    async def start(self, js: JetStreamContext) -> SnapshotMemory:
        async def on_snapshot(snapshot: InstanceSnapshot, _ctx: Context) -> None:
            self.add(snapshot)

        self._consumer = await consume(
            js, SNAPSHOTS_ALL, InstanceSnapshot, on_snapshot, deliver_policy=api.DeliverPolicy.ALL
        )
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
