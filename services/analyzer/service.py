"""The analyzer service: snapshots in, detections out. Wiring only; decisions live in libs/topology.

Start: replay BATON_DETECTIONS (every analyzer's transitions → the incident book, so a restart neither
re-announces nor forgets open incidents), then the last snapshot per instance from BATON_SNAPSHOTS
(plus, for instances whose last snapshot failed, their older kept snapshots, to recover where they sat
in the topology). Both consumers stay live afterwards.

Run: analyse the affected cluster on every snapshot and every cluster each tick; suspects (unreachable
masters / intermediate masters) get probe-now and no decision until the evidence is fresh
(`libs/topology/freshness.py`); transitions (`libs/topology/lifecycle.py`) are published with
Nats-Msg-Id = detection.message_id, so two analyzers store one message per transition; the one whose
publish was not a duplicate runs OnFailureDetectionProcesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import trace
from opentelemetry.context import Context

from libs.aio import cancel_and_wait
from libs.bus.connection import Bus, bus_errors, connect
from libs.bus.messages import UndecodableMessage, decode_model, publish_event, trace_context
from libs.bus.provision import provision
from libs.bus.subjects import DETECTIONS_ALL, SNAPSHOTS_ALL, detection_subject, snapshot_subject
from libs.config import Settings
from libs.config.derive import analysis_params, nats_security
from libs.errors import BusError
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.models.events import Event
from libs.service_main import require_nats
from libs.telemetry import instruments
from libs.topology.analysis import Finding, analyze
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState
from libs.topology.detection_event import from_event, to_event
from libs.topology.freshness import (
    UNCONFIRMED_CODES,
    FreshnessParams,
    evidence_at,
    held_instances,
    probe_targets,
    suspects,
)
from libs.topology.lifecycle import Evidence, IncidentBook, analyzed_facts, decide, runs_detection_hooks
from libs.topology.silence import silence_check_at
from libs.topology.view import ClusterView
from services.analyzer.fleet import Fleet
from services.analyzer.hooks import run_detection_hooks
from services.analyzer.probing import ProbeNowFn, ProbeNowScheduler, default_probe_now

log = logging.getLogger("baton.analyzer")
# one DEBUG line per tick round (every cluster analysed): its cost, for bench/fleet_scale.py; off by default
tick_log = logging.getLogger("baton.analyzer.tick")
# one probe-now streak per LockedSemiSyncMasterHypothesis master, for as long as it lasts
HYPOTHESIS_STREAK = datetime(1970, 1, 1, tzinfo=UTC)
_tracer = trace.get_tracer("baton.analyzer")
SNAPSHOT_STREAM = "BATON_SNAPSHOTS"
DETECTION_STREAM = "BATON_DETECTIONS"


@dataclass
class Outcome:
    """One publish: the transition and whether this analyzer's message was the stored one."""

    detection: Detection
    first: bool
    published_at: datetime


@dataclass
class _Replay:
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    target_seq: int = 0


class Analyzer:
    def __init__(
        self,
        settings: Settings,
        *,
        nats_urls: str | list[str] | None = None,
        node: str | None = None,
        probe_now: ProbeNowFn | Literal["default"] | None = "default",
        tick_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.urls = nats_urls if nats_urls is not None else list(settings.BatonNatsURLs)
        self.node = node or settings.BatonNodeName
        self.tick_s = tick_s
        self.params = analysis_params(settings)
        self.fparams = FreshnessParams(stale_after=self.params.stale_after, hold_max=self.params.stale_after)
        self._probe_now = default_probe_now() if probe_now == "default" else probe_now
        self.fleet = Fleet()
        self.book = IncidentBook()
        self.outcomes: list[Outcome] = []
        self.bus: Bus | None = None
        self.scheduler: ProbeNowScheduler | None = None
        self._metrics = instruments()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._wakeups: dict[str, float] = {}
        self._suspects: dict[str, set[InstanceKey]] = {}
        self._hypotheses: dict[str, set[InstanceKey]] = {}  # LockedSemiSyncMasterHypothesis masters
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._snap_replay = _Replay()
        self._det_replay = _Replay()

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self, replay_timeout_s: float = 10.0) -> None:
        self.bus = await connect(
            self.urls, f"baton-analyzer-{self.node}", security=nats_security(self.settings)
        )
        js = self.bus.js
        await provision(js, self.settings.BatonStreamReplicas)
        self.scheduler = ProbeNowScheduler(self.bus.nc, self._probe_now, self._on_probe_now)
        with bus_errors("subscribing to detections and snapshots"):
            self._det_replay.target_seq = await _last_seq(self.bus, DETECTION_STREAM)
            if self._det_replay.target_seq == 0:
                self._det_replay.ready.set()
            self._subs.append(
                await js.subscribe(
                    DETECTIONS_ALL,
                    cb=self._on_detection_msg,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.ALL,
                )
            )
            await _wait(self._det_replay.ready, replay_timeout_s, "detections")
            self._snap_replay.target_seq = await _last_seq(self.bus, SNAPSHOT_STREAM)
            if self._snap_replay.target_seq == 0:
                self._snap_replay.ready.set()
            self._subs.append(
                await js.subscribe(
                    SNAPSHOTS_ALL,
                    cb=self._on_snapshot_msg,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                )
            )
            await _wait(self._snap_replay.ready, replay_timeout_s, "snapshots")
        await self._recover_last_seen()
        self._dirty.update(self.fleet.clusters)
        log.info(
            "analyzer %s: %d instances in %d clusters, %d open incidents, probe-now %s",
            self.node,
            len(self.fleet.states),
            len(self.fleet.clusters),
            len(self.book.open_detections()),
            "on" if self.scheduler.enabled else "off",
        )
        self._loop_task = asyncio.create_task(self._loop(), name="analyzer loop")

    async def stop(self) -> None:
        self._stopping = True  # also ends a loop whose cancellation nats-py's wait_for swallowed
        self._wake.set()
        task, self._loop_task = self._loop_task, None
        await cancel_and_wait(task)
        if self.scheduler is not None:
            await self.scheduler.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.BatonHookTimeoutSeconds + 2)
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self.bus is not None:
            await self.bus.close()
            self.bus = None

    async def __aenter__(self) -> Analyzer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- inputs -------------------------------------------------------------------------------------
    async def _on_detection_msg(self, msg: Msg) -> None:
        _replayed(msg, self._det_replay)
        try:
            event = decode_model(msg, Event)
            detection = from_event(event)
        except (UndecodableMessage, ValueError) as exc:
            log.warning("ignoring detection message: %s", exc)
            return
        self.book = self.book.apply(detection)

    async def _on_snapshot_msg(self, msg: Msg) -> None:
        _replayed(msg, self._snap_replay)
        try:
            snapshot = decode_model(msg, InstanceSnapshot)
        except UndecodableMessage as exc:
            log.warning("ignoring snapshot: %s", exc)
            return
        self._fold(snapshot, trace_context(msg))

    def _on_probe_now(self, snapshots: dict[InstanceKey, InstanceSnapshot]) -> None:
        ctx = Context()
        for snapshot in snapshots.values():
            self._fold(snapshot, ctx)

    def _fold(self, snapshot: InstanceSnapshot, ctx: Context | None) -> None:
        before = self.fleet.cluster_of(snapshot.key)
        cluster = self.fleet.fold(snapshot, ctx)
        if cluster is None:
            return
        self._dirty.add(cluster)
        if before is not None and before != cluster:
            self._dirty.add(before)
        self._wake.set()

    async def _recover_last_seen(self) -> None:
        """For instances last seen failing, look for their last good snapshot among the kept ones."""
        assert self.bus is not None
        for key, state in list(self.fleet.states.items()):
            if state.last_seen is not None:
                continue
            seq = 1
            for _ in range(64):
                try:
                    raw = await self.bus.js.get_msg(
                        SNAPSHOT_STREAM, seq=seq, subject=snapshot_subject(key), next=True
                    )
                except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
                    break
                with contextlib.suppress(ValueError):
                    snap = InstanceSnapshot.model_validate_json(raw.data or b"")
                    self.fleet.fold(snap)
                seq = int(raw.seq or 0) + 1
                if seq > self._snap_replay.target_seq:
                    break

    # --- the loop -----------------------------------------------------------------------------------
    async def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping:
            now_m = time.monotonic()
            due = [c for c, at in self._wakeups.items() if at <= now_m]
            for cluster in due:
                del self._wakeups[cluster]
            self._dirty.update(due)
            tick = now_m >= next_tick
            cpu0 = time.process_time() if tick else 0.0
            if tick:
                self._dirty.update(self.fleet.clusters)
                self._dirty.update(self.book.clusters)
                next_tick = now_m + self.tick_s
            if self._dirty:
                names, self._dirty = sorted(self._dirty), set()
                try:
                    await self._analyze(names)
                except BusError as exc:
                    log.warning("analysis round incomplete (retrying at the next tick): %s", exc)
                if tick and tick_log.isEnabledFor(logging.DEBUG):
                    tick_log.debug(
                        "tick: %d clusters, %d instances in %.2f ms (CPU %.2f ms)",
                        len(names),
                        len(self.fleet.states),
                        (time.monotonic() - now_m) * 1000,
                        (time.process_time() - cpu0) * 1000,
                    )
                continue
            wait = min([next_tick, *self._wakeups.values()]) - time.monotonic()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wait)):
                    await self._wake.wait()

    async def _analyze(self, names: Collection[str]) -> None:
        for name in names:
            view = self.fleet.view(name)
            ctx = self.fleet.trace_of(view) if view is not None else None
            with _tracer.start_as_current_span(f"analyze {name}", context=ctx) as span:
                span.set_attribute("baton.cluster", name)
                await self._analyze_one(name, view)

    async def _analyze_one(self, name: str, view: ClusterView | None) -> None:
        now = utcnow()
        findings: list[Finding] = []
        suspected: dict[InstanceKey, datetime] = {}
        held: set[InstanceKey] = set()
        if view is not None:
            findings = analyze(view, now, self.params, self.fleet.history)
            suspected = suspects(view, now, self.params.stale_after, self.fleet.down_since)
            codes = {f.instance: f.code for f in findings}
            held = held_instances(view, suspected, codes, now, self.fparams)
            self._probe_suspects(name, view, suspected, held, codes)
            self._probe_hypotheses(name, codes)
        self._suspects[name] = set(suspected) | self._hypotheses.get(name, set())

        def evidence(finding: Finding) -> Evidence:
            newest = (evidence_at(view, finding.instance) if view is not None else None) or now
            since = suspected.get(finding.instance, newest)
            return Evidence(first_at=min(since, newest), newest_at=newest)

        detections = decide(
            self.book,
            findings,
            clusters={name},
            now=now,
            evidence=evidence,
            held=held,
            node=self.node,
            facts=(lambda f: analyzed_facts(view, f)) if view is not None else None,
        )
        for detection in detections:
            await self._publish(detection)

    def _probe_suspects(
        self,
        name: str,
        view: ClusterView,
        suspected: dict[InstanceKey, datetime],
        held: set[InstanceKey],
        codes: dict[InstanceKey, Any],
    ) -> None:
        scheduler = self.scheduler
        if scheduler is None or not scheduler.enabled:
            return
        everyone = set().union(*self._suspects.values(), suspected)
        scheduler.forget_others(everyone)
        for key, since in suspected.items():
            self._check_silence(name, view, key)
            if key not in held and codes.get(key) not in UNCONFIRMED_CODES:
                continue
            scheduler.request(key, since, probe_targets(view, key))
            due = scheduler.due_in(key)
            if due is not None:
                at = time.monotonic() + due
                self._wakeups[name] = min(self._wakeups.get(name, at), at)

    def _probe_hypotheses(self, name: str, codes: dict[InstanceKey, Any]) -> None:
        """orchestrator's emergent operation for LockedSemiSyncMasterHypothesis: re-probe the master
        (throttled like a suspect's probe-now), so its binary log coordinates are recorded again and
        the lock is confirmed (LockedSemiSyncMaster) as soon as they have been still for
        ReasonableLockedSemiSyncMasterSeconds, not at the next poll."""
        hypotheses = {k for k, c in codes.items() if c is Analysis.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS}
        self._hypotheses[name] = hypotheses
        scheduler = self.scheduler
        if scheduler is None or not scheduler.enabled:
            return
        scheduler.forget_others(set().union(*self._suspects.values(), *self._hypotheses.values()))
        for key in hypotheses:
            scheduler.request(key, HYPOTHESIS_STREAK, [key])
            due = scheduler.due_in(key)
            if due is not None:
                at = time.monotonic() + due
                self._wakeups[name] = min(self._wakeups.get(name, at), at)

    def _check_silence(self, name: str, view: ClusterView, key: InstanceKey) -> None:
        """Probe the replicas of suspect `key` when their heartbeat silence crosses the threshold (wake
        this cluster's analysis then), so DeadMaster is seen at the crossing, not at the next poll."""
        assert self.scheduler is not None
        now = utcnow()
        at = silence_check_at(view, key, self.fleet.history, self.params, now)
        if at is None:
            return
        delay = (at - now).total_seconds()
        if delay <= 0:
            self.scheduler.request_silence_check(key, at, [r.key for r in view.replicas_of(key)])
            return
        wake = time.monotonic() + delay
        self._wakeups[name] = min(self._wakeups.get(name, wake), wake)

    # --- output -------------------------------------------------------------------------------------
    async def _publish(self, detection: Detection) -> None:
        assert self.bus is not None
        subject = detection_subject(detection.finding.cluster)
        ack = await publish_event(self.bus.js, subject, to_event(detection))
        self.book = self.book.apply(detection)
        first = not ack.duplicate
        published_at = utcnow()
        self.outcomes.append(Outcome(detection, first, published_at))
        del self.outcomes[:-1000]
        f = detection.finding
        log.info(
            "%s %s %s on %s (%s)%s: %s",
            detection.state.value,
            detection.incident[:12],
            f.code.value,
            f.instance,
            f.cluster,
            "" if first else " [duplicate]",
            f.reason,
        )
        if detection.state is not DetectionState.ACTIVE or not first:
            return
        latency = (published_at - detection.first_evidence_at).total_seconds()
        self._metrics.detection_latency.record(max(0.0, latency), {"analysis": f.code.value})
        if runs_detection_hooks(f) and self.settings.OnFailureDetectionProcesses:
            task = asyncio.create_task(run_detection_hooks(self.bus.js, self.settings, detection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _last_seq(bus: Bus, stream: str) -> int:
    info = await bus.js.stream_info(stream)
    return int(info.state.last_seq or 0) if info.state.messages else 0


def _replayed(msg: Msg, replay: _Replay) -> None:
    if replay.ready.is_set():
        return
    try:
        meta = msg.metadata
    except (ValueError, AttributeError, IndexError):
        return
    if meta.num_pending == 0 or meta.sequence.stream >= replay.target_seq:
        replay.ready.set()


async def _wait(event: asyncio.Event, timeout_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
    except TimeoutError:
        log.warning("replay of %s not finished after %gs: continuing with what arrived", what, timeout_s)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run one analyzer until `stop` is set (libs.service_main's contract)."""
    require_nats(settings, "analyzer")
    analyzer = Analyzer(settings)
    await analyzer.start()
    try:
        await stop.wait()
    finally:
        await analyzer.stop()
