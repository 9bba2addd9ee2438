"""What the leader does with a detection, table-driven: act, forget, ignore (`detection_action`); too
old (`stale_detection`); after admission: drive, defer, drop (`admission_action`); and whether a
refusal is news (`refusal_reported`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.topology.deferral import (
    MAX_DETECTION_AGE,
    AdmissionAction,
    DetectionAction,
    admission_action,
    detection_action,
    refusal_reported,
    stale_detection,
)
from libs.topology.detection import Detection, DetectionState
from tests.unit.candidate.builders import NOW, cluster, r
from tests.unit.recovery.fakes import detection

DET = detection(cluster(r(1), r(2)))
RETRYABLE = frozenset({"blocked", "downtimed", "disabled", "operation"})


def with_(state: DetectionState = DetectionState.ACTIVE, **finding: object) -> Detection:
    return DET.model_copy(update={"state": state, "finding": DET.finding.model_copy(update=finding)})


@pytest.mark.parametrize(
    ("det", "expected"),
    [
        (with_(), DetectionAction.ADMIT),
        (with_(DetectionState.CHANGED), DetectionAction.ADMIT),
        (with_(skippable=True, downtimed=True), DetectionAction.ADMIT),  # its refusal must be visible
        (with_(actionable=False), DetectionAction.IGNORE),
        (with_(DetectionState.CLEARED), DetectionAction.FORGET),
        (with_(DetectionState.CLEARED, actionable=False), DetectionAction.FORGET),  # cleared first
    ],
)
def test_detection_action(det: Detection, expected: DetectionAction) -> None:
    assert detection_action(det) is expected


@pytest.mark.parametrize(
    ("age", "refused"),
    [
        (timedelta(0), False),
        (timedelta(minutes=59), False),
        (MAX_DETECTION_AGE, False),  # the limit itself is still fresh
        (MAX_DETECTION_AGE + timedelta(seconds=1), True),
        (timedelta(hours=2), True),
    ],
)
def test_stale_detection(age: timedelta, refused: bool) -> None:
    reason = stale_detection(DET, DET.detected_at + age)
    assert (reason is not None) is refused
    if reason is not None:
        assert reason == f"detection is {age.total_seconds():.0f}s old (limit 3600s)"


def test_stale_detection_limit_is_a_parameter() -> None:
    assert stale_detection(DET, NOW + timedelta(seconds=11), timedelta(seconds=10)) is not None
    assert stale_detection(DET, NOW + timedelta(seconds=9), timedelta(seconds=10)) is None


@pytest.mark.parametrize(
    ("admitted", "code", "expected"),
    [
        (True, "", AdmissionAction.DRIVE),
        (True, "blocked", AdmissionAction.DRIVE),  # admitted wins whatever a stale code says
        (False, "blocked", AdmissionAction.DEFER),
        (False, "downtimed", AdmissionAction.DEFER),
        (False, "disabled", AdmissionAction.DEFER),
        (False, "operation", AdmissionAction.DEFER),
        (False, "busy", AdmissionAction.DROP),
        (False, "handled", AdmissionAction.DROP),
        (False, "filtered", AdmissionAction.DROP),
        (False, "ignored", AdmissionAction.DROP),
        (False, "", AdmissionAction.DROP),  # a plain-string refusal (a test gate, the age gate)
    ],
)
def test_admission_action(admitted: bool, code: str, expected: AdmissionAction) -> None:
    assert admission_action(admitted, code, RETRYABLE) is expected


@pytest.mark.parametrize(
    ("reason", "quiet_if", "reported"),
    [
        ("blocked by recovery u1", None, True),  # a first refusal
        ("blocked by recovery u1", "blocked by recovery u1", False),  # retried, same reason: not news
        ("blocked by recovery u2", "blocked by recovery u1", True),  # another block now
        ("all replicas downtimed", "blocked by recovery u1", True),
    ],
)
def test_refusal_reported(reason: str, quiet_if: str | None, reported: bool) -> None:
    assert refusal_reported(reason, quiet_if) is reported
