"""In-memory collaborators for pipeline unit tests (no MySQL, no NATS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from libs.errors import LeadershipLost
from libs.hooks import HookContext, HookKind, HookResult
from libs.models import InstanceKey, InstanceSnapshot, MasterRecord
from libs.recovery.audit import RecoveryRecord, StepOutcome
from libs.recovery.control import ControlState
from libs.recovery.executor import StepResult
from libs.recovery.fence import Fence
from libs.recovery.pipeline import Collaborators, RecoveryPipeline
from libs.recovery.policy import Policy
from libs.recovery.record_store import MemoryRecordStore
from libs.recovery.recovery_events import AckPublisher, MemoryEventSink
from libs.recovery.steps import StepKind, StepSpec
from libs.topology.analysis import analyze
from libs.topology.detection import Detection, DetectionState
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import NOW


@dataclass
class FakeExecutor:
    ran: list[str] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # step name prefix -> error
    lose_lead_at: str | None = None

    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        fence.check()
        if self.lose_lead_at and spec.name.startswith(self.lose_lead_at):
            raise LeadershipLost("lease lost mid-step")
        self.ran.append(spec.name)
        for prefix, error in self.fail.items():
            if spec.name.startswith(prefix):
                return StepResult(StepOutcome.FAILED, error=error, failed=dict.fromkeys(spec.required, error))
        outage = 12.5 if spec.kind is StepKind.SWITCH else None
        return StepResult(StepOutcome.DONE, detail="fake", outage_ms=outage)


@dataclass
class FakeHooks:
    failing: set[HookKind] = field(default_factory=set)
    ran: list[HookKind] = field(default_factory=list)

    async def __call__(self, kind: HookKind, ctx: HookContext) -> list[HookResult]:
        self.ran.append(kind)
        code = 1 if kind in self.failing else 0
        return [HookResult(kind=kind, index=1, command="x", rendered="x", started_at=NOW, exit_code=code)]


@dataclass
class Masters:
    written: list[MasterRecord] = field(default_factory=list)

    async def __call__(self, record: MasterRecord) -> None:
        self.written.append(record)


@dataclass
class World:
    """A cluster view served as both 'known' and 'fresh probe'."""

    view: ClusterView

    def known(self) -> Mapping[InstanceKey, InstanceState]:
        return {s.key: s for s in self.view.instances}

    async def probe(self, keys: Sequence[InstanceKey]) -> Mapping[InstanceKey, InstanceSnapshot]:
        return {s.key: s.last_probe for s in self.view.instances if s.key in keys}


def detection(view: ClusterView, incident: str = "inc-1") -> Detection:
    finding = next(f for f in analyze(view, NOW) if f.is_master)
    return Detection(
        incident=incident, state=DetectionState.ACTIVE, finding=finding,
        first_evidence_at=NOW - timedelta(seconds=1), evidence_at=NOW, detected_at=NOW,
    )  # fmt: skip


@dataclass
class Rig:
    world: World
    executor: FakeExecutor
    hooks: FakeHooks
    store: MemoryRecordStore
    events: MemoryEventSink
    masters: Masters
    pipeline: RecoveryPipeline


def rig(view: ClusterView, *, executor: FakeExecutor | None = None, hooks: FakeHooks | None = None,
        store: MemoryRecordStore | None = None, node: str = "n1", control: ControlState | None = None,
        policy: Policy | None = None, candidate_rules: CandidateRules | None = None) -> Rig:  # fmt: skip
    world = World(view)
    ex, hk = executor or FakeExecutor(), hooks or FakeHooks()
    st, ev, ms = store or MemoryRecordStore(), MemoryEventSink(), Masters()

    async def rules() -> CandidateRules:
        return candidate_rules or CandidateRules(stale_after=timedelta(days=1))

    acks: AckPublisher = ev.acknowledged
    collab = Collaborators(
        probe=world.probe, analyze=lambda v, now: analyze(v, NOW), rules=rules, executor=ex, hooks=hk,
        events=ev, store=st, masters=ms, known=world.known, clock=lambda: NOW, control=control,
        policy=policy or Policy(), acknowledged=acks,
    )  # fmt: skip
    return Rig(world, ex, hk, st, ev, ms, RecoveryPipeline(collab, node))
