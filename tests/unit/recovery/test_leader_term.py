"""The leader's term (`libs/recovery/leader_term.py`) with fakes: what it does with detections — admit
and drive, defer a refusal that may pass and retry it, say a repeated refusal once, forget on clear —
and the records its tasks close. (Its consumer, subscriptions and loops run against NATS in
tests/integration/recovery.)"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import nats.errors
import pytest
from opentelemetry.context import Context

from libs.errors import BusError, LeadershipLost
from libs.models import InstanceKey, utcnow
from libs.models.operator import GlobalRecoveries
from libs.recovery.audit import Outcome, RecoveryRecord, new_record
from libs.recovery.control import MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.leader_term import STOP_GRACE_S, LeaderTerm, patiently, recent_successes
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


async def test_a_start_up_step_is_retried_while_it_fails_transiently_and_only_then() -> None:
    """A new term's start-up reads wait out a JetStream without its leaders (a NATS node just died)
    instead of ending the term on the first timeout; any other failure, and LeadershipLost, end it."""
    calls: list[str] = []

    async def flaky() -> str:
        calls.append("try")
        if len(calls) < 3:
            try:
                raise nats.errors.TimeoutError
            except nats.errors.TimeoutError as exc:
                raise BusError("reading every entry of baton_recoveries: timed out") from exc
        return "read"

    assert await patiently(flaky) == "read"
    assert len(calls) == 3

    async def refused() -> None:
        calls.append("refused")
        raise BusError("subscribing: permissions violation")

    with pytest.raises(BusError, match="permissions"):
        await patiently(refused)
    assert calls.count("refused") == 1

    async def deposed() -> None:
        raise LeadershipLost("epoch 3 ended")

    with pytest.raises(LeadershipLost):
        await patiently(deposed)

    async def always_late() -> None:
        try:
            raise nats.errors.TimeoutError
        except nats.errors.TimeoutError as exc:
            raise BusError("timed out") from exc

    started = asyncio.get_running_loop().time()
    with pytest.raises(BusError):
        await patiently(always_late, budget_s=0.5)  # bounded: 0.2 s, then 0.4 s would pass the budget
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_start_up_read_left_unanswered_is_asked_again_before_the_bus_timeout() -> None:
    """A read sent to a stream without a leader is never answered: with `first_attempt_s` it is abandoned
    and asked again (the next attempt twice as long) instead of waiting the bus's whole timeout."""
    attempts: list[float] = []

    async def read() -> str:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 1:
            await asyncio.sleep(60)  # the leaderless stream: no answer
        return "entries"

    started = asyncio.get_running_loop().time()
    assert await patiently(read, first_attempt_s=0.3) == "entries"
    assert len(attempts) == 2
    assert attempts[1] - started < 1.0  # 0.3 s, then 0.2 s of back-off

    async def never() -> None:
        await asyncio.sleep(60)

    with pytest.raises(BusError, match="no answer"):
        await patiently(never, budget_s=1.0, first_attempt_s=0.2)


def _record(n: int) -> RecoveryRecord:
    return RecoveryRecord(
        incident=f"i{n}", code="DeadMaster", cluster=f"c{n}", alias=f"c{n}",
        failed=InstanceKey.parse(f"m{n}"), epoch=4, epochs=[4], started_at=utcnow(),
    )  # fmt: skip


async def test_a_clean_stop_lets_running_recoveries_finish_then_cancels_the_rest() -> None:
    """STOP_GRACE_S: a clean stop waits for the running recoveries up to the grace, returns at once when
    they are done, and `_end` cancels what outlived it (left open for the next leader's sweep)."""
    control = MemoryControlState()
    leader, _, _ = term(rig(DEAD, control=control), control)
    assert await leader.finish_running(grace_s=30) == set()  # nothing running: no wait

    async def work(record: RecoveryRecord, seconds: float) -> RecoveryRecord:
        await asyncio.sleep(seconds)
        return record

    quick_record, slow_record = _record(1), _record(2)
    quick = leader.spawn(quick_record, work(quick_record, 0.05))
    slow = leader.spawn(slow_record, work(slow_record, 60))
    started = time.monotonic()
    late = await leader.finish_running(grace_s=0.5)
    waited = time.monotonic() - started
    assert late == {slow} and quick.done() and not quick.cancelled()
    assert 0.45 <= waited < 10, waited
    await leader._end()
    assert slow.cancelled() and leader.running == {}

    again = _record(3)
    done_soon = leader.spawn(again, work(again, 0.05))
    started = time.monotonic()
    assert await leader.finish_running(grace_s=30) == set()  # all done: the grace is not waited out
    assert done_soon.done() and time.monotonic() - started < 10
    assert STOP_GRACE_S >= 10  # long enough for a failover's steps, short enough for a stop to end
