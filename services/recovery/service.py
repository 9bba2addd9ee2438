"""The recovery service: wiring. Competes for the lease; the leader's term turns detections into
recoveries.

Every process: connects, provisions, remembers snapshots (`SnapshotMemory`), campaigns for
`baton_leader/recovery`. When the lease is won, `_term` builds the term's parts from the settings and
the bus (the pipeline and its collaborators, `wiring.py`; the control state, the old-master fencer, the
master keeper) and runs a `LeaderTerm` (`libs/recovery/leader_term.py`: the sweep of open recoveries,
the detection consumer, the deferred retries, the fencing, the seeding, the command verbs) until the
lease is lost or the service stops; then the lease is released.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from libs.aio import cancel_and_wait
from libs.bus.connection import Bus, connect
from libs.bus.probe_now import probe_now
from libs.bus.provision import provision
from libs.config import Settings
from libs.config.derive import nats_security
from libs.errors import ConfigError
from libs.recovery.audit import RecoveryRecord
from libs.recovery.control import Deferred, KVControlState
from libs.recovery.fence import LeaseFence
from libs.recovery.gates import Gate, fresh_detection
from libs.recovery.leader_term import LeaderTerm
from libs.recovery.leadership import LEASE_TTL_S, Leadership
from libs.recovery.options import statement_timeout
from libs.recovery.pipeline import RecoveryPipeline, StepHook
from libs.recovery.policy import Policy, policy_gates
from libs.recovery.recovery_events import NatsAckPublisher
from libs.service_main import require_nats
from libs.telemetry import instruments
from services.recovery import verbs
from services.recovery.snapshot_memory import SnapshotMemory
from services.recovery.wiring import build_collaborators, build_fencer, build_keeper

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0
SWEEP_S = 3.0  # how often the leader looks for open recoveries nobody drives


class RecoveryService:
    def __init__(
        self,
        settings: Settings,
        *,
        node: str | None = None,
        lease_ttl_s: int = LEASE_TTL_S,
        extra_gates: tuple[Gate, ...] = (),
        after_step: StepHook | None = None,
        retry_s: float = 2.0,
        sweep_s: float = SWEEP_S,
    ) -> None:
        if not settings.BatonNatsURLs:
            raise ConfigError("BatonNatsURLs is empty: the recovery service needs a NATS server")
        self.settings = settings
        self.node = node or f"{settings.BatonNodeName}-{uuid.uuid4().hex[:6]}"
        self.lease_ttl_s = lease_ttl_s
        self.statement_timeout_s = statement_timeout(settings, lease_ttl_s)  # ConfigError unless < TTL
        self.policy = Policy.from_settings(settings)
        self.extra_gates = extra_gates
        self.after_step = after_step
        self.retry_s = retry_s
        self.sweep_s = sweep_s
        self.memory = SnapshotMemory()
        self.bus: Bus | None = None
        self.leadership: Leadership | None = None
        self.term: LeaderTerm | None = None  # while leading
        self.finished: list[RecoveryRecord] = []
        self.metrics = instruments()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> RecoveryService:
        bus = self.bus = await connect(
            self.settings.BatonNatsURLs, f"baton-recovery {self.node}", security=nats_security(self.settings)
        )
        await provision(bus.js, self.settings.BatonStreamReplicas)
        await self.memory.start(bus.js)
        self.leadership = Leadership(bus.js, self.node, ttl_s=self.lease_ttl_s)
        self.metrics.leader(self.node, None)
        self._task = asyncio.create_task(self.leadership.run(self._lead), name="recovery leadership")
        return self

    async def stop(self) -> None:
        if self.leadership is not None:
            self.leadership.stop()
        if self._task is not None:
            # Running recoveries may finish (a failover cut in half is worse than a slow shutdown), but
            # not forever: after the grace period the leadership task is cancelled for sure.
            done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE_S)
            if not done:
                log.warning("recovery: still busy after %ss, cancelling", STOP_GRACE_S)
                await cancel_and_wait(self._task)
        await self.memory.stop()
        if self.bus is not None:
            await self.bus.close()

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    @property
    def running(self) -> dict[str, asyncio.Task[RecoveryRecord]]:
        """uid -> task driving it, in the current term (empty when not leading)."""
        return self.term.running if self.term is not None else {}

    @property
    def deferred(self) -> dict[str, Deferred]:
        """The current term's deferred detections, by `Deferred.key` (empty when not leading)."""
        return self.term.deferred if self.term is not None else {}

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "leader": self.is_leader,
            "epoch": self.term.fence.epoch if self.term is not None else None,
            "running": sorted(self.running),
            "deferred": sorted(
                f"{d.detection.finding.code.value} on {d.detection.finding.instance} ({d.reason})"
                for d in self.deferred.values()
            ),
        }

    def _term(self, fence: LeaseFence) -> LeaderTerm:
        """The term's parts, built from the settings and the bus, in a `LeaderTerm`."""
        assert self.bus is not None and self.leadership is not None
        settings, node = self.settings, self.node
        js, nc = self.bus.js, self.bus.nc
        control = KVControlState(js)
        acks = NatsAckPublisher(js, node)
        gates = (*policy_gates(self.policy, control), fresh_detection, *self.extra_gates)
        collab = build_collaborators(
            settings,
            js,
            self.memory,
            gates=gates,
            after_step=self.after_step,
            policy=self.policy,
            control=control,
            acknowledged=acks,
            refresh=lambda keys: probe_now(nc, keys, reason="recovery done"),
            lease_ttl_s=self.lease_ttl_s,
        )
        return LeaderTerm(
            fence,
            js=js,
            stopping=self.leadership.stopping,
            pipeline=RecoveryPipeline(collab, node),
            control=control,
            acks=acks,
            fencer=build_fencer(settings, js, collab, self.statement_timeout_s),
            keeper=build_keeper(settings, js, nc, node, busy=lambda: bool(self.running)),
            known=self.memory,
            commands=lambda ops: verbs.serve(nc, ops, self),
            finished=self.finished,
            seed_period_s=max(1.0, float(settings.InstancePollSeconds)),
            retry_s=self.retry_s,
            sweep_s=self.sweep_s,
            on_closed=self._closed,
        )

    def _closed(self, record: RecoveryRecord) -> None:
        since = record.detected_at or record.started_at
        self.metrics.recovery_closed(record.code, record.outcome.value, since, record.ended_at)

    async def _lead(self, fence: LeaseFence) -> None:
        term = self.term = self._term(fence)
        self.metrics.leader(self.node, fence.epoch)
        try:
            await term.run()
        finally:
            self.term = None
            self.metrics.leader(self.node, None)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run one recovery process until `stop` is set (libs.service_main's contract)."""
    require_nats(settings, "recovery")
    service = await RecoveryService(settings).start()
    try:
        await stop.wait()
        log.info("recovery: shutting down")
    finally:
        await service.stop()
