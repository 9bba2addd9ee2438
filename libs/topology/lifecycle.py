"""The detection lifecycle: successive analyses in, `Detection` transitions out. Pure.

A *problem key* is (cluster, instance, code). The `IncidentBook` holds, per key, the newest incident
known (open or cleared) and, if open, its latest detection. It is folded from every detection on
BATON_DETECTIONS, ours and other analyzers' alike, so all analyzers agree on it.

`decide()` compares a fresh analysis with the book:
- a finding with no open incident on its key opens one (`active`, id chained to the key's previous
  incident, see `detection.chained_incident_id`);
- a finding whose material facts (counts, replicas, warnings, reachability) differ from the open
  incident's latest detection is `changed` (revision + 1);
- an open incident of an analysed cluster with no finding any more is `cleared`;
- instances in `held` (suspects awaiting fresh probes, see `freshness.py`) get no transition at all.
Order: actives, then changes, then clears, each by priority: what triggers a recovery goes out first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from libs.models import InstanceKey
from libs.topology.analysis import Finding, describe
from libs.topology.codes import Analysis
from libs.topology.context import is_failing_to_connect
from libs.topology.detection import AnalyzedFacts, Detection, DetectionState, chained_incident_id
from libs.topology.view import ClusterView

ProblemKey = tuple[str, InstanceKey, Analysis]
_KNOWN_PER_KEY = 8  # incident ids remembered per key, to recognise late echoes of older incidents

# orchestrator runs OnFailureDetectionProcesses for codes it has a handler for: the actionable ones and
# these "generic" ones (reference §1a, getCheckAndRecoverFunction).
GENERIC_DETECTION_CODES = frozenset(
    {
        Analysis.DEAD_MASTER_AND_REPLICAS,
        Analysis.UNREACHABLE_MASTER,
        Analysis.UNREACHABLE_MASTER_WITH_LAGGING_REPLICAS,
        Analysis.ALL_MASTER_REPLICAS_NOT_REPLICATING,
        Analysis.ALL_MASTER_REPLICAS_NOT_REPLICATING_OR_DEAD,
        Analysis.DEAD_INTERMEDIATE_MASTER_AND_REPLICAS,
        Analysis.UNREACHABLE_INTERMEDIATE_MASTER_WITH_LAGGING_REPLICAS,
    }
)

COMMAND_HINTS = {
    Analysis.DEAD_MASTER: "force-master-failover",
    Analysis.DEAD_MASTER_AND_SOME_REPLICAS: "force-master-failover",
}


def problem_key(finding: Finding) -> ProblemKey:
    return (finding.cluster, finding.instance, finding.code)


def is_reportable(finding: Finding) -> bool:
    """Findings with a primary code become detections; warnings-only ones ride along inside them."""
    return finding.code is not Analysis.NO_PROBLEM


def runs_detection_hooks(finding: Finding) -> bool:
    """Whether a new detection of this finding runs OnFailureDetectionProcesses (orchestrator's rule)."""
    return finding.actionable or finding.code in GENERIC_DETECTION_CODES


def material(finding: Finding) -> tuple[object, ...]:
    """What must differ for a `changed` detection: not the reason text, which carries ages."""
    return (
        finding.reachable,
        finding.master,
        finding.downtimed,
        finding.replicas_downtimed,
        finding.replica_count,
        finding.valid_replicas,
        finding.replicating_replicas,
        finding.connected_replicas,
        finding.failing_to_connect_replicas,
        finding.lagging_replicas,
        finding.delayed_replicas,
        finding.downtimed_replicas,
        finding.replicas,
        finding.structure_warnings,
        finding.errant_gtids,
    )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One problem key: the newest incident known, its open detection (None once cleared)."""

    last: str
    open: Detection | None
    known: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IncidentBook:
    keys: Mapping[ProblemKey, KeyRecord] = field(default_factory=dict)

    def open_detections(self, clusters: Collection[str] | None = None) -> list[Detection]:
        return [
            rec.open
            for key, rec in self.keys.items()
            if rec.open is not None and (clusters is None or key[0] in clusters)
        ]

    def open_for(self, key: ProblemKey) -> Detection | None:
        rec = self.keys.get(key)
        return rec.open if rec is not None else None

    def previous(self, key: ProblemKey) -> str:
        rec = self.keys.get(key)
        return rec.last if rec is not None else ""

    @property
    def clusters(self) -> set[str]:
        return {key[0] for key, rec in self.keys.items() if rec.open is not None}

    def apply(self, detection: Detection) -> IncidentBook:
        """Fold one stored (or just published) detection in. Idempotent; late echoes change nothing."""
        key = problem_key(detection.finding)
        rec = self.keys.get(key)
        incident = detection.incident
        cleared = detection.state is DetectionState.CLEARED
        if rec is not None and incident == rec.last:
            current = rec.open
            if current is None:
                return self  # already cleared: a late `changed` cannot reopen it
            if cleared:
                new = replace(rec, open=None)
            elif _newer(detection, current):
                new = replace(rec, open=detection)
            else:
                return self
        elif rec is not None and incident in rec.known:
            return self  # an older incident's echo
        else:
            known = (*(rec.known if rec else ()), incident)[-_KNOWN_PER_KEY:]
            new = KeyRecord(last=incident, open=None if cleared else detection, known=known)
        keys = dict(self.keys)
        keys[key] = new
        return IncidentBook(keys)

    def apply_all(self, detections: Iterable[Detection]) -> IncidentBook:
        book = self
        for detection in detections:
            book = book.apply(detection)
        return book


def _newer(candidate: Detection, current: Detection) -> bool:
    return candidate.revision > current.revision


@dataclass(frozen=True, slots=True)
class Evidence:
    """When the evidence of a finding was first seen and gathered (probe times)."""

    first_at: datetime
    newest_at: datetime


EvidenceOf = Callable[[Finding], Evidence]
FactsOf = Callable[[Finding], AnalyzedFacts | None]


def decide(
    book: IncidentBook,
    findings: Iterable[Finding],
    *,
    clusters: Collection[str],
    now: datetime,
    evidence: EvidenceOf,
    held: Collection[InstanceKey] = (),
    node: str = "",
    facts: FactsOf | None = None,
) -> list[Detection]:
    """The transitions from `book` to this analysis of `clusters` (see the module doc)."""
    actives: list[Detection] = []
    changes: list[Detection] = []
    current: dict[ProblemKey, Finding] = {}
    for finding in findings:
        if is_reportable(finding) and finding.cluster in clusters and finding.instance not in held:
            current[problem_key(finding)] = finding
    for key, finding in current.items():
        open_ = book.open_for(key)
        ev = evidence(finding)
        if open_ is None:
            previous = book.previous(key)
            actives.append(
                Detection(
                    incident=chained_incident_id(finding, previous),
                    state=DetectionState.ACTIVE,
                    finding=finding,
                    first_evidence_at=ev.first_at,
                    evidence_at=ev.newest_at,
                    detected_at=now,
                    previous_incident=previous,
                    node=node,
                    facts=facts(finding) if facts else None,
                )
            )
        elif material(open_.finding) != material(finding):
            changes.append(
                open_.model_copy(
                    update={
                        "state": DetectionState.CHANGED,
                        "finding": finding,
                        "evidence_at": ev.newest_at,
                        "detected_at": now,
                        "revision": open_.revision + 1,
                        "node": node,
                        "facts": facts(finding) if facts else open_.facts,
                    }
                )
            )
    clears: list[Detection] = []
    for open_ in book.open_detections(clusters):
        key = problem_key(open_.finding)
        if key in current or open_.finding.instance in held:
            continue
        clears.append(
            open_.model_copy(
                update={
                    "state": DetectionState.CLEARED,
                    "evidence_at": max(open_.evidence_at, evidence(open_.finding).newest_at),
                    "detected_at": now,
                    "revision": 0,
                    "node": node,
                }
            )
        )

    def order(d: Detection) -> tuple[int, str, int, str]:
        f = d.finding
        return (f.priority, f.instance.host, f.instance.port, f.code.value)

    return sorted(actives, key=order) + sorted(changes, key=order) + sorted(clears, key=order)


def analyzed_facts(view: ClusterView, finding: Finding) -> AnalyzedFacts:
    """The AnalysisEntry facts of `finding`'s instance, from its last known snapshot."""
    state = view.get(finding.instance)
    if state is None:
        return AnalyzedFacts(description=describe(finding.code), cluster_instances=len(view.instances))
    info = state.info
    semi = info.semi_sync
    replicas = view.replicas_of(finding.instance)
    probe = state.last_probe
    failing = probe.reachable and is_failing_to_connect(probe.replication)
    return AnalyzedFacts(
        description=describe(finding.code),
        data_center=info.data_center,
        region=info.region,
        binlog_file=info.binlog_file,
        binlog_pos=info.binlog_pos,
        read_only=info.read_only,
        gtid_mode=info.gtid_mode,
        partial=state.last_probe.partial,
        depth=view.depth_of(finding.instance),
        failing_to_connect=failing,
        semi_sync_master_enabled=semi.master_enabled,
        semi_sync_master_status=semi.master_status,
        semi_sync_master_wait_for_replica_count=semi.master_wait_for_replica_count,
        semi_sync_master_clients=semi.master_clients,
        semi_sync_replicas_enabled=sum(1 for r in replicas if r.info.semi_sync.replica_enabled),
        cluster_instances=len(view.instances),
        command_hint=COMMAND_HINTS.get(finding.code, ""),
    )
