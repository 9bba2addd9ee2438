"""A detection: a finding's lifecycle as the analyzer publishes it on `baton.detection.<cluster>`.

The analyzer publishes a `Detection` when a problem appears (`active`), changes (`changed`: same code on
the same instance, other counts/replicas) or clears (`cleared`). `incident` names one occurrence of one
problem and is derived from data the analyzers share, not from a clock or a process, so two analyzers
compute the same id and JetStream's duplicate window (`Nats-Msg-Id` = `message_id`) stores one detection.

The analyzer uses `chained_incident_id`: (cluster, instance, code, the previous incident on that same
problem key). Every analyzer replays and follows BATON_DETECTIONS, so all agree on the previous incident;
probe times would not do, because each analyzer folds the fresh snapshots of its own probe-now requests
and so may see a problem first in a different snapshot. `incident_id` (probe-time based) remains for
callers that have one shared snapshot stream and no detection history.
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
    raw = "|".join((finding.cluster, str(finding.instance), str(finding.code), first_evidence_at.isoformat()))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def chained_incident_id(finding: Finding, previous_incident: str) -> str:
    """Deterministic id of the next occurrence of (cluster, instance, code) after `previous_incident`
    ("" when none is known)."""
    raw = "|".join((finding.cluster, str(finding.instance), str(finding.code), previous_incident))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class AnalyzedFacts(BaseModel):
    """Facts of the analyzed instance that orchestrator's AnalysisEntry shows and `Finding` lacks."""

    model_config = ConfigDict(frozen=True)

    description: str = ""
    data_center: str = ""
    region: str = ""
    binlog_file: str = ""
    binlog_pos: int = 0
    read_only: bool = False
    gtid_mode: str = ""
    partial: bool = False  # LastCheckPartialSuccess
    depth: int = 0  # ReplicationDepth
    failing_to_connect: bool = False  # IsFailingToConnectToMaster
    semi_sync_master_enabled: bool = False
    semi_sync_master_status: bool = False
    semi_sync_master_wait_for_replica_count: int = 0
    semi_sync_master_clients: int = 0
    semi_sync_replicas_enabled: int = 0  # CountSemiSyncReplicasEnabled
    cluster_instances: int = 0  # ClusterDetails.CountInstances
    command_hint: str = ""


class Detection(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident: str
    state: DetectionState
    finding: Finding
    first_evidence_at: datetime  # probe time of the first snapshot showing the problem
    evidence_at: datetime  # probe time of the newest snapshot this decision was made on
    detected_at: datetime  # the analyzer's clock when it decided
    revision: int = 0  # 0 for `active`, +1 per `changed`, in the order the analyzer saw them
    previous_incident: str = ""  # the incident before this one on the same problem key ("" if none)
    node: str = ""  # the analyzer that decided (ProcessingNodeHostname)
    facts: AnalyzedFacts | None = None

    @property
    def message_id(self) -> str:
        """The JetStream Nats-Msg-Id: one stored message per incident transition."""
        return f"{self.incident}:{self.state.value}:{self.revision}"
