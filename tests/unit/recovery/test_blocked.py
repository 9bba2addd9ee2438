"""orchestrator's blocked recoveries from the deferred detections (`libs/recovery/control.py`): what a
repeated refusal keeps and moves, and which refusals are listed."""

from __future__ import annotations

from datetime import timedelta

from libs.recovery.audit import Outcome, RecoveryRecord, new_record
from libs.recovery.control import Block, Deferred, blocked_attempts
from libs.topology.detection import Detection
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import detection

DET = detection(cluster(r(1), r(2)), "inc-2")  # DeadMaster of MASTER, alias "test"
OTHER = detection(cluster(r(1), r(2)), "inc-3").model_copy(
    update={"finding": DET.finding.model_copy(update={"instance": k(7), "cluster": str(k(7))})}
)


def refusal(det: Detection, seconds: float, code: str = "blocked", by: str = "u1") -> RecoveryRecord:
    record = new_record(det, epoch=1, node="n", now=NOW)
    record.skip_code, record.blocked_by = code, by if code == "blocked" else ""
    record.close(Outcome.SKIPPED, f"{code} by {by}", NOW + timedelta(seconds=seconds))
    return record


def block(uid: str = "u1", minutes: float = 60) -> Block:
    return Block(scope="cluster", cluster=str(MASTER), alias="test", instance=MASTER, successor=k(1),
                 analysis="DeadMaster", incident="inc-1", uid=uid, blocked_at=NOW,
                 blocked_until=NOW + timedelta(minutes=minutes))  # fmt: skip


def test_a_repeated_refusal_keeps_its_first_time_and_moves_its_last_in_memory() -> None:
    first = Deferred.refused(DET, refusal(DET, 0), None)
    assert (first.code, first.blocked_by, first.refusals) == ("blocked", "u1", 1)
    assert first.first_refused_at == first.last_refused_at == NOW
    assert first.news(None)
    again = Deferred.refused(DET, refusal(DET, 2), first)
    assert again.first_refused_at == NOW and again.last_refused_at == NOW + timedelta(seconds=2)
    assert again.refusals == 2 and not again.news(first)  # not written to KV again


def test_another_cause_starts_over() -> None:
    first = Deferred.refused(DET, refusal(DET, 0), None)
    other_block = Deferred.refused(DET, refusal(DET, 4, by="u2"), first)
    assert other_block.refusals == 1 and other_block.first_refused_at == NOW + timedelta(seconds=4)
    assert other_block.news(first)
    disabled = Deferred.refused(DET, refusal(DET, 6, code="disabled"), other_block)
    assert (disabled.code, disabled.blocked_by, disabled.refusals) == ("disabled", "", 1)


def test_only_refusals_by_a_block_in_force_are_listed_latest_first() -> None:
    older = Deferred.refused(OTHER, refusal(OTHER, 1), None)
    newer = Deferred.refused(DET, refusal(DET, 3), Deferred.refused(DET, refusal(DET, 0), None))
    gone = Deferred.refused(DET, refusal(DET, 5, by="u9"), None)  # its block was acknowledged
    disabled = Deferred.refused(OTHER, refusal(OTHER, 5, code="disabled"), None)
    listed = blocked_attempts([older, newer, gone, disabled], [block()])
    assert [(b.instance, b.count) for b in listed] == [(MASTER, 2), (k(7), 1)]
    top = listed[0]
    assert (top.cluster, top.alias, top.analysis, top.blocking_uid) == (
        str(MASTER),
        "test",
        "DeadMaster",
        "u1",
    )
    assert top.first_blocked_at == NOW and top.last_blocked_at == NOW + timedelta(seconds=3)
    assert top.blocked_until == NOW + timedelta(minutes=60) and top.reason == "blocked by u1"
    assert blocked_attempts([newer], []) == []
