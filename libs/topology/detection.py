"""A detection: a finding's lifecycle as the analyzer publishes it on `baton.detection.<cluster>`.

The analyzer publishes a `Detection` when a problem appears (`active`), changes (`changed`: same code on
the same instance, other counts/replicas) or clears (`cleared`). `incident` names one occurrence of one
problem and is derived from the data, not from a clock or a process (cluster, instance, code, and the
probe time of the first snapshot that showed it), so two analyzers fed the same snapshot stream compute
the same id, and JetStream's duplicate window (`Nats-Msg-Id` = `message_id`) stores one detection.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from libs.topology.analysis import Finding


class DetectionState(StrEnum):
    ACTIVE = "active"
    CHANGED = "changed"
    CLEARED = "cleared"


def incident_id(finding: Finding, first_evidence_at: datetime) -> str:
    """Deterministic id of one occurrence of a problem (32 hex)."""
    raw = "|".join(
        (finding.cluster, str(finding.instance), str(finding.code), first_evidence_at.isoformat())
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class Detection(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident: str
    state: DetectionState
    finding: Finding
    first_evidence_at: datetime  # probe time of the first snapshot showing the problem
    evidence_at: datetime  # probe time of the newest snapshot this decision was made on
    detected_at: datetime  # the analyzer's clock when it decided
    revision: int = 0  # 0 for `active`, +1 per `changed`, in the order the analyzer saw them

    @property
    def message_id(self) -> str:
        """The JetStream Nats-Msg-Id: one stored message per incident transition."""
        return f"{self.incident}:{self.state.value}:{self.revision}"
