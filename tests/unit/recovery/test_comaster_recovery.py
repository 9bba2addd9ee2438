"""A dead co-master through the pipeline (fake executor, hooks, store): the kind, the steps, what is
published, the hooks and their context, the audit entry, and the refusal in orchestrator's words."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.hooks import HookContext, HookKind, HookResult
from libs.recovery.audit import Outcome, RecoveryKind
from libs.recovery.fence import StaticFence
from libs.recovery.policy import Policy
from libs.topology.analysis import analyze
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState
from libs.topology.view import ClusterView
from tests.unit.candidate.builders import NOW
from tests.unit.recovery.fakes import rig
from tests.unit.topology.test_comaster import OTHER, R3, M, ring


def dead_co_master(view: ClusterView) -> Detection:
    finding = next(f for f in analyze(view, NOW) if f.instance == M)
    assert finding.code is Analysis.DEAD_CO_MASTER and finding.is_co_master
    return Detection(
        incident="inc-co", state=DetectionState.ACTIVE, finding=finding,
        first_evidence_at=NOW - timedelta(seconds=1), evidence_at=NOW, detected_at=NOW,
    )  # fmt: skip


class Contexts:
    def __init__(self) -> None:
        self.ran: list[tuple[HookKind, HookContext]] = []

    async def __call__(self, kind: HookKind, ctx: HookContext) -> list[HookResult]:
        self.ran.append((kind, ctx))
        return [HookResult(kind=kind, index=1, command="x", rendered="x", started_at=NOW, exit_code=0)]


async def test_dead_co_master_is_failed_over_to_the_other_co_master() -> None:
    t = rig(ring())
    hooks = Contexts()
    t.pipeline.c.hooks = hooks
    rec = await t.pipeline.handle(dead_co_master(ring()), StaticFence(4))

    assert rec.outcome is Outcome.SUCCEEDED, rec.reason
    assert rec.kind is RecoveryKind.CO_MASTER and rec.successor == OTHER
    assert t.executor.ran == [
        "stop-io",
        "drain",
        f"wait-applied:{OTHER}",
        f"repoint:{OTHER}",
        f"promote:{OTHER}",
    ]
    assert [m.master for m in t.masters.written] == [OTHER]
    assert [k for k, _ in hooks.ran] == [
        HookKind.PRE_FAILOVER, HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER,
    ]  # fmt: skip
    for _, ctx in hooks.ran:
        assert (ctx.instance_type, ctx.is_co_master, ctx.is_master) == ("co-master", True, False)
        assert ctx.failure_type == "DeadCoMaster"
    entry = rec.to_orchestrator()
    assert entry["Type"] == "CoMasterRecovery" and entry["AnalysisEntry"]["IsCoMaster"] is True
    assert t.events.phases[0] == "registered" and t.events.phases[-1] == "completed"


@pytest.mark.parametrize(
    ("must", "outcome", "successor"),
    [(True, Outcome.ABORTED, None), (False, Outcome.SUCCEEDED, R3)],
)
async def test_must_promote_other_co_master_decides_when_it_is_behind(
    must: bool, outcome: Outcome, successor: object
) -> None:
    """The other co-master cannot be promoted (no binary log): with CoMasterRecoveryMustPromoteOther-
    CoMaster the recovery is refused in orchestrator's words; without it another replica is promoted and
    the other co-master follows it."""
    view = ring(other={"log_bin": False})
    t = rig(view, policy=Policy(co_master_must_promote_other=must))
    rec = await t.pipeline.handle(dead_co_master(view), StaticFence(4))

    assert rec.outcome is outcome, rec.reason
    assert rec.successor == successor
    if must:
        assert "RecoverDeadCoMaster: could not manage to promote other-co-master" in rec.reason
        assert "mustPromoteOtherCoMaster is true" in rec.reason
        assert t.executor.ran == [] and t.masters.written == []
        assert t.hooks.ran[-1] is HookKind.POST_UNSUCCESSFUL_FAILOVER
    else:
        assert rec.plan is not None and OTHER in rec.plan.replicas_to_repoint
        assert [m.master for m in t.masters.written] == [R3]
