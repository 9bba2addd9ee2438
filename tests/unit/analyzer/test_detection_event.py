"""Detections in the Event envelope, and rendered as orchestrator's audit-failure-detection entries."""

from __future__ import annotations

import pytest

from libs.models.events import Event
from libs.topology.detection_event import analysis_entry, failure_detection, from_event, to_event
from libs.topology.lifecycle import IncidentBook, analyzed_facts, decide
from tests.unit.analysis.builder import NOW
from tests.unit.analyzer.helpers import DEAD, evidence, findings_of, view_of


def dead_master() -> object:
    view = view_of(DEAD)
    (detection,) = decide(
        IncidentBook(),
        findings_of(DEAD),
        clusters={"m:3306"},
        now=NOW,
        evidence=evidence,
        node="analyzer-1",
        facts=lambda f: analyzed_facts(view, f),
    )
    return detection


def test_event_round_trip_and_ids() -> None:
    detection = dead_master()
    event = to_event(detection)  # type: ignore[arg-type]
    assert event.id == detection.message_id  # type: ignore[attr-defined]
    assert event.type == "detection.active"
    assert (event.cluster, event.instance, event.source, event.node) == (
        "m:3306",
        "m:3306",
        "analyzer",
        "analyzer-1",
    )
    wire = Event.model_validate_json(event.model_dump_json())
    assert from_event(wire) == detection
    with pytest.raises(ValueError, match="not a detection"):
        from_event(Event(type="recovery.started", source="recovery"))


def test_orchestrator_shapes() -> None:
    detection = dead_master()
    entry = analysis_entry(detection)  # type: ignore[arg-type]
    assert entry["Analysis"] == "DeadMaster"
    assert entry["AnalyzedInstanceKey"] == {"Hostname": "m", "Port": 3306}
    assert entry["CountReplicas"] == 2
    assert entry["CountValidReplicas"] == 2
    assert entry["CountValidReplicatingReplicas"] == 0
    assert entry["IsMaster"] is True
    assert entry["LastCheckValid"] is False
    assert entry["IsActionableRecovery"] is True
    assert entry["ClusterDetails"]["CountInstances"] == 3
    assert entry["CommandHint"] == "force-master-failover"
    assert entry["Description"].startswith("Master cannot be reached")
    assert [r["Hostname"] for r in entry["Replicas"]] == ["r1", "r2"]
    record = failure_detection(detection, 7)  # type: ignore[arg-type]
    assert record["UID"] == detection.incident  # type: ignore[attr-defined]
    assert record["IsActive"] is True
    assert record["AnalysisEntry"] == entry
    assert record["ProcessingNodeHostname"] == "analyzer-1"
