"""The recovery record's state machine and its orchestrator shape."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome, new_record
from libs.topology.analysis import analyze
from libs.topology.candidate import choose_candidate
from libs.topology.detection import Detection, DetectionState
from libs.topology.plan import CandidateRules
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r

T = [NOW + timedelta(milliseconds=i) for i in range(20)]


def record(epoch: int = 5) -> RecoveryRecord:
    view = cluster(r(1), r(2, pos="0-1-90"))
    finding = analyze(view, NOW)[0]
    det = Detection(
        incident="inc", state=DetectionState.ACTIVE, finding=finding,
        first_evidence_at=NOW - timedelta(seconds=1), evidence_at=NOW, detected_at=NOW,
    )  # fmt: skip
    rec = new_record(det, epoch=epoch, node="n1", now=T[0])
    rec.set_plan(choose_candidate(view, MASTER, CandidateRules(), NOW))
    return rec


def test_steps_begin_end_and_done() -> None:
    rec = record()
    rec.begin_step("a", T[1])
    assert not rec.done("a")
    with pytest.raises(ValueError, match="already running"):
        rec.begin_step("a", T[2])
    rec.end_step("a", T[3], StepOutcome.DONE, detail="ok")
    assert rec.done("a") and rec.step("a") is not None
    assert rec.step("a").duration_ms == 2.0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="already done"):
        rec.begin_step("a", T[4])
    with pytest.raises(ValueError, match="not running"):
        rec.end_step("b", T[4], StepOutcome.DONE)
    rec.begin_step("b", T[4])
    rec.end_step("b", T[5], StepOutcome.FAILED, error="boom", errors={"h:1": "x"})
    assert not rec.done("b")
    assert rec.errors == ["b: boom", "b: h:1: x"]


@pytest.mark.parametrize(
    ("outcome", "active_after"),
    [(Outcome.SUCCEEDED, False), (Outcome.FAILED, False), (Outcome.SKIPPED, False)],
)
def test_close_is_final_and_interrupts_running_steps(outcome: Outcome, active_after: bool) -> None:
    rec = record()
    rec.begin_step("x", T[1])
    rec.close(outcome, "why", T[2])
    assert rec.active is active_after and rec.reason == "why" and rec.ended_at == T[2]
    assert rec.step("x").outcome is StepOutcome.INTERRUPTED  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="already closed"):
        rec.close(Outcome.FAILED, "again", T[3])
    with pytest.raises(ValueError, match="closed"):
        rec.begin_step("y", T[3])
    with pytest.raises(ValueError, match="final outcome"):
        record().close(Outcome.RUNNING, "no", T[3])


def test_take_over_by_a_newer_epoch_interrupts_the_step_in_flight_only() -> None:
    rec = record(epoch=5)
    rec.begin_step("done-one", T[1])
    rec.end_step("done-one", T[2], StepOutcome.DONE)
    rec.begin_step("in-flight", T[3])
    with pytest.raises(ValueError, match="cannot take over"):
        rec.take_over(5, "n2", T[4])
    assert rec.take_over(9, "n2", T[4]) == ["in-flight"]
    assert rec.epoch == 9 and rec.epochs == [5, 9] and rec.node == "n2"
    assert rec.done("done-one") and not rec.done("in-flight")
    rec.begin_step("in-flight", T[5])  # the new leader may run the interrupted step again
    rec.end_step("in-flight", T[6], StepOutcome.DONE)
    assert [s.outcome for s in rec.steps if s.name == "in-flight"] == [
        StepOutcome.INTERRUPTED,
        StepOutcome.DONE,
    ]


def test_plan_fills_successor_lost_and_participants() -> None:
    rec = record()
    assert rec.successor == k(1)
    assert [x.key for x in rec.lost] == [MASTER]
    assert [x.key for x in rec.passed_over] == [k(2)]
    assert rec.participating == sorted([MASTER, k(1), k(2)])
    rec.mark_lost(k(2), "could not be repointed")
    rec.mark_lost(k(2), "twice")
    assert rec.lost_replicas == [k(2)]


def test_orchestrator_shape() -> None:
    rec = record()
    rec.begin_step("plan", T[1])
    rec.end_step("plan", T[2], StepOutcome.DONE)
    rec.promoted_at, rec.published_at = T[5], T[6]
    rec.close(Outcome.SUCCEEDED, "done", T[7])
    o = rec.to_orchestrator()
    for field in (
        "UID", "AnalysisEntry", "SuccessorKey", "IsActive", "IsSuccessful", "LostReplicas",
        "ParticipatingInstanceKeys", "AllErrors", "RecoveryStartTimestamp", "RecoveryEndTimestamp",
        "ProcessingNodeHostname", "LastDetectionId",
    ):  # fmt: skip
        assert field in o
    assert o["SuccessorKey"] == {"Hostname": "127.0.0.1", "Port": k(1).port}
    assert o["IsSuccessful"] is True and o["IsActive"] is False
    assert o["AnalysisEntry"]["Analysis"] == "DeadMaster"
    assert o["AnalysisEntry"]["AnalyzedInstanceKey"]["Port"] == MASTER.port
    assert o["LostReplicas"] == []
    t = rec.timings()
    assert t["detection"] == 1.0 and t["decision"] == 0.002 and t["execution"] == 0.003
    assert t["publication"] == 0.001
    assert rec.steps_orchestrator()[0]["Message"] == "plan: done"
