"""How a `Detection` travels: inside the `Event` envelope on `baton.detection.<cluster-token>`.

The event's `id` is the detection's `message_id` (also the `Nats-Msg-Id`), its `type` is
`detection.<state>` (`detection.active`, `detection.changed`, `detection.cleared`), `time` is when the
analyzer decided, and `data` is the Detection as JSON. `analysis_entry()` and `failure_detection()`
render a detection the way orchestrator's `replication-analysis` / `audit-failure-detection` show it
(reference §1e), for the API.
"""

from __future__ import annotations

from typing import Any

from libs.models import InstanceKey
from libs.models.events import Event
from libs.topology.detection import AnalyzedFacts, Detection, DetectionState

EVENT_PREFIX = "detection."
SOURCE = "analyzer"


def to_event(detection: Detection) -> Event:
    f = detection.finding
    return Event(
        id=detection.message_id,
        type=f"{EVENT_PREFIX}{detection.state.value}",
        time=detection.detected_at,
        cluster=f.cluster,
        instance=str(f.instance),
        source=SOURCE,
        node=detection.node or "?",
        data=detection.model_dump(mode="json"),
    )


def from_event(event: Event) -> Detection:
    """The Detection inside a detection event. Raises ValueError for another event type."""
    if not event.type.startswith(EVENT_PREFIX):
        raise ValueError(f"event {event.id} is a {event.type!r}, not a detection")
    return Detection.model_validate(event.data)


def _key(key: InstanceKey | None) -> dict[str, Any]:
    return {"Hostname": key.host, "Port": key.port} if key else {"Hostname": "", "Port": 0}


def analysis_entry(detection: Detection) -> dict[str, Any]:
    """orchestrator's ReplicationAnalysis JSON (the `AnalysisEntry` of audit-failure-detection)."""
    f = detection.finding
    facts = detection.facts or AnalyzedFacts()
    return {
        "AnalyzedInstanceKey": _key(f.instance),
        "AnalyzedInstanceMasterKey": _key(f.master),
        "ClusterDetails": {
            "ClusterName": f.cluster,
            "ClusterAlias": f.alias,
            "ClusterDomain": "",
            "CountInstances": facts.cluster_instances,
            "HeuristicLag": 0,
            "HasAutomatedMasterRecovery": False,
            "HasAutomatedIntermediateMasterRecovery": False,
        },
        "AnalyzedInstanceDataCenter": facts.data_center,
        "AnalyzedInstanceRegion": facts.region,
        "AnalyzedInstancePhysicalEnvironment": "",
        "AnalyzedInstanceBinlogCoordinates": {
            "LogFile": facts.binlog_file,
            "LogPos": facts.binlog_pos,
            "Type": 0,
        },
        "IsMaster": f.is_master,
        "IsReplicationGroupMember": False,
        "IsCoMaster": f.is_co_master,
        "LastCheckValid": f.reachable,
        "LastCheckPartialSuccess": facts.partial,
        "CountReplicas": f.replica_count,
        "CountValidReplicas": f.valid_replicas,
        "CountValidReplicatingReplicas": f.replicating_replicas,
        "CountReplicasFailingToConnectToMaster": f.failing_to_connect_replicas,
        "CountDowntimedReplicas": f.downtimed_replicas,
        "ReplicationDepth": facts.depth,
        "Replicas": [_key(r) for r in f.replicas],
        "SlaveHosts": [_key(r) for r in f.replicas],
        "IsFailingToConnectToMaster": facts.failing_to_connect,
        "Analysis": f.code.value,
        "Description": facts.description or f.reason,
        "StructureAnalysis": [w.value for w in f.structure_warnings],
        "IsDowntimed": f.downtimed,
        "IsReplicasDowntimed": f.replicas_downtimed,
        "DowntimeEndTimestamp": "",
        "DowntimeRemainingSeconds": 0,
        "IsBinlogServer": False,
        "SemiSyncMasterEnabled": facts.semi_sync_master_enabled,
        "SemiSyncMasterStatus": facts.semi_sync_master_status,
        "SemiSyncMasterWaitForReplicaCount": facts.semi_sync_master_wait_for_replica_count,
        "SemiSyncMasterClients": facts.semi_sync_master_clients,
        "CountSemiSyncReplicasEnabled": facts.semi_sync_replicas_enabled,
        "CountDelayedReplicas": f.delayed_replicas,
        "CountLaggingReplicas": f.lagging_replicas,
        "IsActionableRecovery": f.actionable,
        "ProcessingNodeHostname": detection.node,
        "ProcessingNodeToken": "",
        "CountAdditionalAgreeingNodes": 0,
        "StartActivePeriod": detection.first_evidence_at.isoformat(),
        "SkippableDueToDowntime": f.skippable,
        "GTIDMode": facts.gtid_mode,
        "MaxReplicaGTIDErrant": ",".join(e.gtids for e in f.errant_gtids),
        "CommandHint": facts.command_hint,
        "IsReadOnly": facts.read_only,
        "Reason": f.reason,
    }


def failure_detection(detection: Detection, record_id: int = 0) -> dict[str, Any]:
    """One entry of orchestrator's `audit-failure-detection` (a TopologyRecovery without recovery)."""
    return {
        "Id": record_id,
        "UID": detection.incident,
        "AnalysisEntry": analysis_entry(detection),
        "SuccessorKey": None,
        "SuccessorAlias": "",
        "IsActive": detection.state is not DetectionState.CLEARED,
        "IsSuccessful": False,
        "LostReplicas": [],
        "ParticipatingInstanceKeys": [],
        "AllErrors": [],
        "RecoveryStartTimestamp": detection.detected_at.isoformat(),
        "RecoveryEndTimestamp": "",
        "ProcessingNodeHostname": detection.node,
        "ProcessingNodeToken": "",
        "Acknowledged": False,
        "AcknowledgedAt": "",
        "AcknowledgedBy": "",
        "AcknowledgedComment": "",
        "LastDetectionId": record_id,
        "RelatedRecoveryId": 0,
        "Type": "",
        "RecoveryType": "NotMasterRecovery",
    }
