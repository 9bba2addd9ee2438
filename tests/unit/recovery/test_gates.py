"""Gate decisions, table-driven: each returns a reason or None."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.recovery.audit import Outcome, new_record
from libs.recovery.fence import StaticFence
from libs.recovery.gates import GateContext, fresh_detection, handled_code, leader, one_per_cluster
from libs.topology.codes import Analysis
from tests.unit.candidate.builders import NOW, cluster, r
from tests.unit.recovery.fakes import detection

DET = detection(cluster(r(1), r(2)), "inc-1")


def ctx(det=DET, current=None, held=True, now=NOW):  # type: ignore[no-untyped-def]
    fence = StaticFence(3)
    if not held:
        fence.lose()
    return GateContext(det, new_record(det, epoch=3, node="n", now=now), current, fence, now)


def closed(outcome: Outcome, incident: str = "inc-1"):  # type: ignore[no-untyped-def]
    rec = new_record(DET, epoch=2, node="n", now=NOW)
    rec.incident = incident
    rec.close(outcome, "x", NOW)
    return rec


def with_finding(**update: object):  # type: ignore[no-untyped-def]
    return DET.model_copy(update={"finding": DET.finding.model_copy(update=update)})


@pytest.mark.parametrize(
    ("gate", "context", "expected"),
    [
        (handled_code, ctx(), None),
        (handled_code, ctx(with_finding(code=Analysis.DEAD_MASTER_AND_SOME_REPLICAS)), None),
        (handled_code, ctx(with_finding(code=Analysis.DEAD_CO_MASTER)), None),
        (handled_code, ctx(with_finding(code=Analysis.DEAD_CO_MASTER_AND_SOME_REPLICAS)), None),
        (
            handled_code,
            ctx(with_finding(code=Analysis.UNREACHABLE_CO_MASTER)),
            "no automated recovery for UnreachableCoMaster",
        ),
        (
            handled_code,
            ctx(with_finding(code=Analysis.ALL_CO_MASTER_REPLICAS_NOT_REPLICATING)),
            "no automated recovery for AllCoMasterReplicasNotReplicating",
        ),
        (handled_code, ctx(with_finding(downtimed=True, skippable=True)), "not actionable: downtimed"),
        (leader, ctx(), None),
        (leader, ctx(held=False), "not the recovery leader"),
        (one_per_cluster, ctx(), None),
        (one_per_cluster, ctx(current=new_record(DET, epoch=2, node="n", now=NOW)), "already running"),
        (one_per_cluster, ctx(current=closed(Outcome.SUCCEEDED)), "already handled"),
        (one_per_cluster, ctx(current=closed(Outcome.ABORTED)), "already handled"),
        (one_per_cluster, ctx(current=closed(Outcome.ALREADY_FIXED)), None),
        (one_per_cluster, ctx(current=closed(Outcome.SUCCEEDED, incident="other")), None),
        (fresh_detection, ctx(), None),
        (fresh_detection, ctx(now=NOW + timedelta(hours=2)), "old"),
    ],
)
async def test_gate(gate, context, expected) -> None:  # type: ignore[no-untyped-def]
    reason = await gate(context)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
