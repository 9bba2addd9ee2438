"""Real model objects for the API tests: detections and recovery records as the analyzer and the
recovery publish them (their own constructors and event builders)."""

from __future__ import annotations

from datetime import timedelta

from libs.models import Event, InstanceKey, utcnow
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome, new_record
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState, incident_id


def finding(cluster: str, instance: InstanceKey, code: Analysis = Analysis.DEAD_MASTER) -> Finding:
    return Finding(
        code=code,
        cluster=cluster,
        alias=cluster,
        instance=instance,
        is_master=True,
        reachable=False,
        priority=1,
        actionable=True,
        replica_count=2,
        valid_replicas=2,
        reason=f"{code.value} on {instance}",
    )


def detection(
    cluster: str,
    instance: InstanceKey,
    state: DetectionState = DetectionState.ACTIVE,
    seconds_ago: float = 1.0,
) -> Detection:
    f = finding(cluster, instance)
    first = utcnow() - timedelta(seconds=seconds_ago)
    return Detection(
        incident=incident_id(f, first),
        state=state,
        finding=f,
        first_evidence_at=first,
        evidence_at=first,
        detected_at=utcnow(),
        node="test",
    )


def recovery(det: Detection, *, succeed_to: InstanceKey | None = None) -> RecoveryRecord:
    now = utcnow()
    record = new_record(det, epoch=7, node="test-leader", now=now)
    record.begin_step("plan", now)
    record.end_step("plan", now, StepOutcome.DONE, detail="candidate chosen")
    if succeed_to is not None:
        record.successor = succeed_to
        record.begin_step("promote", now)
        record.end_step("promote", now, StepOutcome.DONE)
        record.close(Outcome.SUCCEEDED, "promoted", utcnow())
    return record


def recovery_event(record: RecoveryRecord, phase: str) -> Event:
    from libs.recovery.recovery_events import recovery_event as build

    return build(record, phase)
