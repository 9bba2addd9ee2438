"""The leader's term (`libs/recovery/leader_term.py`) with fakes: what it does with detections — admit
and drive, defer a refusal that may pass and retry it, say a repeated refusal once, forget on clear —
and the records its tasks close. (Its consumer, subscriptions and loops run against NATS in
tests/integration/recovery.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from opentelemetry.context import Context

from libs.models.operator import GlobalRecoveries
from libs.recovery.audit import Outcome, RecoveryRecord, new_record
from libs.recovery.control import MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.leader_term import LeaderTerm, recent_successes
from libs.recovery.policy import Policy, policy_gates
from libs.topology.detection import Detection, DetectionState
from libs.topology.detection_event import to_event
from tests.unit.candidate.builders import NOW, cluster, r
from tests.unit.recovery.fakes import Rig, detection, rig

DEAD = cluster(r(1), r(2, pos="0-1-90"))


class Fencer:
    def __init__(self) -> None:
        self.watched: list[str] = []

    def watch(self, record: RecoveryRecord) -> None:
        self.watched.append(record.uid)

    def watch_promoted(self, record: RecoveryRecord) -> None:
        pass


def term(t: Rig, control: MemoryControlState) -> tuple[LeaderTerm, Fencer, list[RecoveryRecord]]:
    t.pipeline.c.gates = policy_gates(Policy(master_filters=("*",)), control)
    fencer, closed = Fencer(), list[RecoveryRecord]()
    leader = LeaderTerm(
        StaticFence(4),
        js=None,  # type: ignore[arg-type]  # only run() consumes
        stopping=asyncio.Event(),
        pipeline=t.pipeline,
        control=control,
        acks=t.events.acknowledged,
        fencer=fencer,  # type: ignore[arg-type]
        keeper=object(),  # type: ignore[arg-type]  # only run() seeds
        known=t.world.known,
        commands=lambda ops: asyncio.sleep(0, []),
        finished=[],
        seed_period_s=1.0,
        retry_s=1.0,
        sweep_s=1.0,
        on_closed=closed.append,
    )
    return leader, fencer, closed


async def _settle(leader: LeaderTerm) -> None:
    if leader.running:
        await asyncio.wait(list(leader.running.values()))


def _switch(control: MemoryControlState, enabled: bool) -> None:
    control.switch = GlobalRecoveries(enabled=enabled, changed_at=NOW, by="ops")


async def _detect(leader: LeaderTerm, det: Detection) -> None:
    await leader._on_detection(to_event(det), Context())


async def test_a_refusal_that_may_pass_is_deferred_said_once_and_driven_when_it_passes() -> None:
    control = MemoryControlState()
    _switch(control, False)
    t = rig(DEAD, control=control)
    leader, fencer, closed = term(t, control)
    det = detection(DEAD)
    await _detect(leader, det)
    (item,) = leader.deferred.values()
    assert (item.code, item.refusals) == ("disabled", 1)
    assert list(control.later) == [item.key]  # kept for the next leader
    assert [r.outcome for r in leader.finished] == [Outcome.SKIPPED]

    await leader.retry_deferred()  # refused again, for the same reason: counted, not news
    assert leader.deferred[item.key].refusals == 2
    assert len(leader.finished) == 1

    _switch(control, True)
    await leader.retry_deferred()
    await _settle(leader)
    assert leader.deferred == {} and control.later == {}
    assert [r.outcome for r in leader.finished] == [Outcome.SKIPPED, Outcome.SUCCEEDED]
    done = leader.finished[-1]
    assert closed == [done] and fencer.watched == [done.uid]  # metrics and the old master's watch


async def test_a_refusal_for_good_is_dropped_and_a_cleared_detection_forgets() -> None:
    control = MemoryControlState()
    _switch(control, False)
    t = rig(DEAD, control=control)
    leader, _, _ = term(t, control)
    det = detection(DEAD)
    await _detect(leader, det)
    assert len(leader.deferred) == 1
    await _detect(leader, det.model_copy(update={"state": DetectionState.CLEARED}))
    assert leader.deferred == {} and control.later == {}

    leader.pipeline.c.gates = (*leader.pipeline.c.gates, _refuse_for_good)
    _switch(control, True)
    await _detect(leader, det)
    assert leader.deferred == {} and leader.running == {}
    assert leader.finished[-1].reason == "not today"


async def _refuse_for_good(_ctx: Any) -> str | None:
    return "not today"


async def test_a_detection_with_no_recovery_is_ignored() -> None:
    control = MemoryControlState()
    t = rig(DEAD, control=control)
    leader, _, _ = term(t, control)
    det = detection(DEAD)
    await _detect(
        leader, det.model_copy(update={"finding": det.finding.model_copy(update={"actionable": False})})
    )
    assert leader.finished == [] and leader.deferred == {} and t.store.records == {}


def test_recent_successes_are_the_successful_ones_of_the_last_day() -> None:
    def ended(outcome: Outcome, hours: float) -> RecoveryRecord:
        rec = new_record(detection(DEAD), epoch=1, node="n", now=NOW)
        rec.close(outcome, "x", NOW - timedelta(hours=hours))
        return rec

    fresh, old, failed = ended(Outcome.SUCCEEDED, 1), ended(Outcome.SUCCEEDED, 25), ended(Outcome.FAILED, 1)
    running = new_record(detection(DEAD), epoch=1, node="n", now=NOW)
    assert recent_successes([fresh, old, failed, running], NOW) == [fresh]
