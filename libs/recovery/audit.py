"""The recovery record: one per attempt, the audit of what the recovery saw, decided and did.

A `RecoveryRecord` is the single source of truth of a recovery: the pipeline writes it to the
`baton_recoveries` KV bucket after every step (so a new leader can resume where the old one stopped,
never re-running a step recorded as done), and publishes it on `baton.recovery.<cluster>.<phase>` (so
the API can serve orchestrator's `audit-recovery` from it: `to_orchestrator()`).

Steps form a tiny state machine: `begin_step` → `end_step(done|failed|skipped)`. A step a dead leader
began but never ended stays `running` with the old epoch; `interrupt_open_steps` marks it `interrupted`
when a new leader takes over. `done(name)` is what makes a resumed pipeline skip finished work.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.hooks import HookResult
from libs.models import InstanceKey
from libs.topology.analysis import Finding
from libs.topology.detection import Detection
from libs.topology.plan import Plan, ReplicaReason


class Outcome(StrEnum):
    """How a recovery ended (RUNNING while it has not)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # attempted, no (complete) successor
    ABORTED = "aborted"  # refused before acting on MySQL (pre-failover hook, no candidate, lost lead)
    SKIPPED = "skipped"  # a gate refused it (not leader, already running, filtered, ...)
    ALREADY_FIXED = "already-fixed"  # the re-check on fresh data found nothing to do

    @property
    def is_final(self) -> bool:
        return self is not Outcome.RUNNING


GRACEFUL = "graceful-master-takeover"  # command hint prefix (also -auto)
FORCE_MASTER_FAILOVER = "force-master-failover"
FORCE_MASTER_TAKEOVER = "force-master-takeover"  # force-master-failover to a designated direct replica
FORCED_FAILOVERS = (FORCE_MASTER_FAILOVER, FORCE_MASTER_TAKEOVER)  # the master is failed over even if alive
OPERATION_COMMAND = "operation:"  # command prefix of a refactoring's lock record (`operation:relocate`)
INTERMEDIATE_MASTER_CODES = frozenset(
    {
        "DeadIntermediateMaster",
        "DeadIntermediateMasterAndSomeReplicas",
        "DeadIntermediateMasterWithSingleReplicaFailingToConnect",
        "AllIntermediateMasterReplicasFailingToConnectOrDead",
    }
)

# With RecoverNonWriteableMaster, this structure warning is also a primary code (writeable.py).
NON_WRITEABLE_MASTER_CODE = "NoWriteableMasterStructureWarning"
# orchestrator's semi-sync repair (recoverSemiSyncReplicas; libs/recovery/semisync.py).
SEMI_SYNC_CODES = frozenset({"LockedSemiSyncMaster", "MasterWithTooManySemiSyncReplicas"})
# orchestrator's checkAndRecoverDeadCoMaster (libs/topology/comaster.py).
CO_MASTER_CODES = frozenset({"DeadCoMaster", "DeadCoMasterAndSomeReplicas"})


class RecoveryKind(StrEnum):
    MASTER = "master"  # dead master failover (automated, recover, force-master-failover)
    INTERMEDIATE_MASTER = "intermediate-master"  # relocate a dead intermediate master's replicas
    GRACEFUL_TAKEOVER = "graceful-takeover"  # planned master switch
    NON_WRITEABLE_MASTER = "non-writeable-master"  # RecoverNonWriteableMaster: read_only=0 on the master
    SEMI_SYNC = "semi-sync"  # semi-sync replicas enabled/disabled to match the master's wait count
    CO_MASTER = "co-master"  # dead co-master: its replicas regrouped under the other co-master
    # a topology refactoring or replication-control verb (libs/recovery/refactoring.py): it holds the
    # cluster's record only as the per-cluster lock; never resumed, never blocks, never a recovery event
    OPERATION = "operation"


class StepOutcome(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # found already done (guard) or not applicable
    INTERRUPTED = "interrupted"  # its leader died or lost the lease while it ran


class StepRecord(BaseModel):
    """One step of one recovery, with its timing and, for steps over several instances, per-target
    errors (a replica that could not be repointed is an error of the step, not of the recovery)."""

    model_config = ConfigDict(frozen=True)

    name: str
    epoch: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: StepOutcome = StepOutcome.RUNNING
    detail: str = ""
    error: str | None = None
    errors: dict[str, str] = Field(default_factory=dict)  # target host:port -> error

    @property
    def duration_ms(self) -> float | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds() * 1000.0, 3)


class RecoveryRecord(BaseModel):
    """Everything about one recovery attempt. Mutable on purpose: the pipeline owns it while it runs;
    copies are frozen in events (`model_dump`)."""

    uid: str = Field(default_factory=lambda: uuid.uuid4().hex)
    incident: str
    detection_state: str = "active"
    code: str  # the analysis code that triggered it, e.g. DeadMaster
    cluster: str
    alias: str
    failed: InstanceKey
    command: str = ""  # orchestrator's command hint: force-master-failover, graceful-master-takeover, ...
    requested_by: str = ""  # who started a manual recovery ("" for automated ones)
    forced: bool = False  # manual: bypasses the global switch, filters, downtime and blocks
    skip_hooks: bool = False  # recover-lite
    designated: InstanceKey | None = None  # the operator's candidate / takeover target
    skip_code: str = ""  # when a gate refused it: filtered, blocked, downtimed, disabled, ...
    blocked_by: str = ""  # skip_code `blocked`: the uid of the recovery whose block refused it
    epoch: int  # the epoch of the leader acting now
    epochs: list[int] = Field(default_factory=list)  # every epoch that acted on it, in order
    node: str = ""
    finding: Finding | None = None
    first_evidence_at: datetime | None = None  # first snapshot showing the failure (detection)
    detected_at: datetime | None = None  # when the analyzer decided
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome = Outcome.RUNNING
    reason: str = ""
    steps: list[StepRecord] = Field(default_factory=list)
    plan: Plan | None = None
    successor: InstanceKey | None = None
    intermediate: InstanceKey | None = None
    passed_over: list[ReplicaReason] = Field(default_factory=list)
    lost: list[ReplicaReason] = Field(default_factory=list)  # the failed master first, then replicas
    participating: list[InstanceKey] = Field(default_factory=list)
    hooks: list[HookResult] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    fenced_at: datetime | None = None  # when the failed master was found writable and made read-only
    promoted_at: datetime | None = None  # when the successor became writable
    published_at: datetime | None = None  # when baton_masters held the successor
    write_outage_ms: float | None = None  # graceful takeover: old master read_only -> new one writable
    acknowledged: bool = False
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    acknowledged_comment: str = ""

    # -- what kind of recovery -----------------------------------------------------------------------
    @property
    def kind(self) -> RecoveryKind:
        if self.command.startswith(OPERATION_COMMAND):
            return RecoveryKind.OPERATION
        if self.command.startswith(GRACEFUL):
            return RecoveryKind.GRACEFUL_TAKEOVER
        if self.code in INTERMEDIATE_MASTER_CODES:
            return RecoveryKind.INTERMEDIATE_MASTER
        if self.code == NON_WRITEABLE_MASTER_CODE:
            return RecoveryKind.NON_WRITEABLE_MASTER
        if self.code in SEMI_SYNC_CODES:
            return RecoveryKind.SEMI_SYNC
        if self.code in CO_MASTER_CODES:
            return RecoveryKind.CO_MASTER
        return RecoveryKind.MASTER

    def acknowledge(self, by: str, comment: str, now: datetime) -> bool:
        """Mark acknowledged; False if it already was."""
        if self.acknowledged:
            return False
        self.acknowledged, self.acknowledged_by = True, by
        self.acknowledged_comment, self.acknowledged_at = comment, now
        return True

    # -- state machine -------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.outcome is Outcome.RUNNING

    def step(self, name: str) -> StepRecord | None:
        """The latest record of step `name`."""
        return next((s for s in reversed(self.steps) if s.name == name), None)

    def done(self, name: str) -> bool:
        """Whether step `name` finished (done or skipped): a resumed pipeline must not run it again."""
        latest = self.step(name)
        return latest is not None and latest.outcome in (StepOutcome.DONE, StepOutcome.SKIPPED)

    def begin_step(self, name: str, now: datetime) -> StepRecord:
        if self.done(name):
            raise ValueError(f"step {name} of recovery {self.uid} is already done")
        if not self.active:
            raise ValueError(f"recovery {self.uid} is closed ({self.outcome}); cannot begin {name}")
        latest = self.step(name)
        if latest is not None and latest.outcome is StepOutcome.RUNNING and latest.epoch == self.epoch:
            raise ValueError(f"step {name} of recovery {self.uid} is already running")
        record = StepRecord(name=name, epoch=self.epoch, started_at=now)
        self.steps.append(record)
        return record

    def end_step(
        self,
        name: str,
        now: datetime,
        outcome: StepOutcome,
        *,
        detail: str = "",
        error: str | None = None,
        errors: dict[str, str] | None = None,
    ) -> StepRecord:
        if outcome is StepOutcome.RUNNING:
            raise ValueError("a step ends with done, failed, skipped or interrupted")
        for i in range(len(self.steps) - 1, -1, -1):
            current = self.steps[i]
            if current.name == name and current.outcome is StepOutcome.RUNNING:
                ended = current.model_copy(
                    update={
                        "ended_at": now,
                        "outcome": outcome,
                        "detail": detail,
                        "error": error,
                        "errors": dict(errors or {}),
                    }
                )
                self.steps[i] = ended
                if error:
                    self.errors.append(f"{name}: {error}")
                self.errors.extend(f"{name}: {k}: {v}" for k, v in sorted((errors or {}).items()))
                return ended
        raise ValueError(f"step {name} of recovery {self.uid} is not running")

    def interrupt_open_steps(self, now: datetime, why: str) -> list[str]:
        """Mark steps left running by an earlier epoch as interrupted; returns their names."""
        names = []
        for i, current in enumerate(self.steps):
            if current.outcome is StepOutcome.RUNNING and current.epoch != self.epoch:
                self.steps[i] = current.model_copy(
                    update={"ended_at": now, "outcome": StepOutcome.INTERRUPTED, "error": why}
                )
                names.append(current.name)
        return names

    def take_over(self, epoch: int, node: str, now: datetime) -> list[str]:
        """A new leader (higher epoch) adopts this open record. Returns the interrupted steps."""
        if epoch <= self.epoch:
            raise ValueError(f"epoch {epoch} cannot take over recovery {self.uid} held by epoch {self.epoch}")
        old = self.epoch
        self.epoch, self.node = epoch, node
        self.epochs.append(epoch)
        return self.interrupt_open_steps(now, f"leader of epoch {old} stopped during this step")

    def close(self, outcome: Outcome, reason: str, now: datetime) -> None:
        """Resolve the record. Steps still running end as interrupted (their effect is unknown)."""
        if outcome is Outcome.RUNNING:
            raise ValueError("close() needs a final outcome")
        if not self.active:
            raise ValueError(f"recovery {self.uid} is already closed ({self.outcome})")
        for i, current in enumerate(self.steps):
            if current.outcome is StepOutcome.RUNNING:
                self.steps[i] = current.model_copy(
                    update={"ended_at": now, "outcome": StepOutcome.INTERRUPTED, "error": reason}
                )
        self.outcome, self.reason, self.ended_at = outcome, reason, now

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.successor, self.intermediate = plan.successor, plan.intermediate
        self.passed_over = list(plan.passed_over)
        failed = ReplicaReason(key=plan.failed_master, reason="the failed master")
        self.lost = [failed, *plan.lost]
        keys = {plan.failed_master, *(r.key for r in plan.passed_over), *(r.key for r in plan.lost)}
        if plan.successor is not None:
            keys.add(plan.successor)
        self.participating = sorted(keys)

    def mark_lost(self, key: InstanceKey, reason: str) -> None:
        if all(r.key != key for r in self.lost):
            self.lost.append(ReplicaReason(key=key, reason=reason))

    @property
    def lost_replicas(self) -> list[InstanceKey]:
        """Replicas lost (not the failed master itself): orchestrator's LostReplicas."""
        return [r.key for r in self.lost if r.key != self.failed]

    # -- timings ---------------------------------------------------------------------------------------
    def timings(self) -> dict[str, float | None]:
        """Seconds from the failure's first evidence: detection, decision (plan made), execution
        (successor writable), publication (baton_masters written), and the total."""

        def seconds(a: datetime | None, b: datetime | None) -> float | None:
            return None if a is None or b is None else round((b - a).total_seconds(), 6)

        planned = self.step("plan")
        decided = planned.ended_at if planned else None
        return {
            "detection": seconds(self.first_evidence_at, self.detected_at),
            "handoff": seconds(self.detected_at, self.started_at),
            "decision": seconds(self.started_at, decided),
            "execution": seconds(decided, self.promoted_at),
            "publication": seconds(self.promoted_at, self.published_at),
            "total": seconds(self.first_evidence_at, self.published_at),
        }

    # -- orchestrator's shape --------------------------------------------------------------------------
    def to_orchestrator(self) -> dict[str, Any]:
        """orchestrator's `audit-recovery` entry (TopologyRecovery), field for field (reference §1e)."""

        def key(k: InstanceKey | None) -> dict[str, Any] | None:
            return None if k is None else {"Hostname": k.host, "Port": k.port}

        finding = self.finding
        analysis: dict[str, Any] = {
            "AnalyzedInstanceKey": key(self.failed),
            "AnalyzedInstanceMasterKey": key(finding.master if finding else None),
            "ClusterDetails": {"ClusterName": self.cluster, "ClusterAlias": self.alias},
            "Analysis": self.code,
            "Description": finding.reason if finding else "",
            "IsMaster": finding.is_master if finding else True,
            "IsCoMaster": finding.is_co_master if finding else False,
            "LastCheckValid": finding.reachable if finding else False,
            "CountReplicas": finding.replica_count if finding else 0,
            "CountValidReplicas": finding.valid_replicas if finding else 0,
            "CountValidReplicatingReplicas": finding.replicating_replicas if finding else 0,
            "Replicas": [key(r) for r in (finding.replicas if finding else ())],
            "IsActionableRecovery": finding.actionable if finding else True,
            "CommandHint": self.command.removesuffix("-auto"),
            "StructureAnalysis": [w.value for w in (finding.structure_warnings if finding else ())],
        }
        return {
            "Id": self.uid,
            "UID": self.uid,
            "AnalysisEntry": analysis,
            "SuccessorKey": key(self.successor if self.outcome is Outcome.SUCCEEDED else None),
            "SuccessorAlias": "",
            "SuccessorBinlogCoordinates": None,
            "IsActive": self.active,
            "IsSuccessful": self.outcome is Outcome.SUCCEEDED,
            "LostReplicas": [key(k) for k in self.lost_replicas],
            "ParticipatingInstanceKeys": [key(k) for k in self.participating],
            "AllErrors": list(self.errors),
            "RecoveryStartTimestamp": self.started_at.isoformat(),
            "RecoveryEndTimestamp": self.ended_at.isoformat() if self.ended_at else "",
            "ProcessingNodeHostname": self.node,
            "ProcessingNodeToken": str(self.epoch),
            "Acknowledged": self.acknowledged,
            "AcknowledgedAt": self.acknowledged_at.isoformat() if self.acknowledged_at else "",
            "AcknowledgedBy": self.acknowledged_by,
            "AcknowledgedComment": self.acknowledged_comment,
            "LastDetectionId": self.incident,
            "RelatedRecoveryId": 0,
            "Type": "IntermediateMasterRecovery"
            if self.kind is RecoveryKind.INTERMEDIATE_MASTER
            else "CoMasterRecovery"
            if self.kind is RecoveryKind.CO_MASTER
            else "MasterRecovery",
            "RecoveryType": "MasterRecoveryGTID",
        }

    def steps_orchestrator(self) -> list[dict[str, Any]]:
        """orchestrator's `audit-recovery-steps/:uid` rows."""
        rows = []
        for i, s in enumerate(self.steps, start=1):
            text = f"{s.name}: {s.outcome}"
            if s.detail:
                text += f" ({s.detail})"
            if s.error:
                text += f": {s.error}"
            rows.append(
                {"Id": i, "RecoveryUID": self.uid, "AuditAt": (s.ended_at or s.started_at).isoformat(),
                 "Message": text}
            )  # fmt: skip
        return rows


def new_record(
    detection: Detection, *, epoch: int, node: str, now: datetime, command: str = ""
) -> RecoveryRecord:
    """A fresh record for a detection, under the acting leader's epoch."""
    f = detection.finding
    return RecoveryRecord(
        incident=detection.incident,
        detection_state=detection.state.value,
        code=f.code.value,
        cluster=f.cluster,
        alias=f.alias,
        failed=f.instance,
        command=command,
        epoch=epoch,
        epochs=[epoch],
        node=node,
        finding=f,
        first_evidence_at=detection.first_evidence_at,
        detected_at=detection.detected_at,
        started_at=now,
    )
