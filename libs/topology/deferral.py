"""What the recovery leader does with a detection, before and after admitting it. Pure.

- `detection_action`: a cleared detection forgets what was held back for its problem; one that is not
  actionable (no recovery exists for its code) is ignored; the rest are admitted (gates, registration).
  A skippable (downtimed) one is admitted too, so its refusal is visible.
- `stale_detection`: a detection replayed from long ago (the durable consumer's first start) is not
  acted upon (FailureDetectionPeriodBlockMinutes' default, an hour).
- `admission_action`: after admission, an admitted recovery is driven (and anything held back for its
  problem forgotten); one refused for a reason that may pass while the problem lasts (a block, the
  global switch, a downtime, a refactoring holding the cluster: `gates.RETRYABLE`) is deferred and
  tried again; any other refusal (busy, handled, filtered, ...) drops it.
- `refusal_reported`: a retried detection refused again for the same reason is not news.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum

from libs.topology.detection import Detection, DetectionState

MAX_DETECTION_AGE = timedelta(hours=1)  # FailureDetectionPeriodBlockMinutes' default


class DetectionAction(StrEnum):
    ADMIT = "admit"
    FORGET = "forget"  # cleared: drop what was deferred for this problem
    IGNORE = "ignore"


def detection_action(detection: Detection) -> DetectionAction:
    if detection.state is DetectionState.CLEARED:
        return DetectionAction.FORGET
    if not detection.finding.actionable:
        return DetectionAction.IGNORE
    return DetectionAction.ADMIT


def stale_detection(detection: Detection, now: datetime, limit: timedelta = MAX_DETECTION_AGE) -> str | None:
    """Why `detection` is too old to act upon at `now`, or None."""
    age = now - detection.detected_at
    if age > limit:
        return f"detection is {age.total_seconds():.0f}s old (limit {limit.total_seconds():.0f}s)"
    return None


class AdmissionAction(StrEnum):
    DRIVE = "drive"  # admitted: drive it, forget any deferral of its problem
    DEFER = "defer"  # refused for the moment: keep it, try again
    DROP = "drop"  # refused for good: forget any deferral of its problem


def admission_action(admitted: bool, refusal_code: str, retryable: Collection[str]) -> AdmissionAction:
    """`retryable`: the refusal codes that may stop applying while the problem lasts."""
    if admitted:
        return AdmissionAction.DRIVE
    if refusal_code in retryable:
        return AdmissionAction.DEFER
    return AdmissionAction.DROP


def refusal_reported(reason: str, quiet_if: str | None) -> bool:
    """Whether a refusal for `reason` is published: always, unless it repeats the reason the retried
    detection was deferred for (`quiet_if`)."""
    return quiet_if is None or reason != quiet_if
