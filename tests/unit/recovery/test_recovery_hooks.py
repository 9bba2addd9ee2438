"""Which hooks a recovery runs and what they are told, table-driven (`libs/recovery/recovery_hooks.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from libs.hooks import HookKind, HookResult
from libs.recovery.audit import GRACEFUL, Outcome, RecoveryKind, RecoveryRecord, StepOutcome, new_record
from libs.recovery.policy import Policy
from libs.recovery.recovery_hooks import POST_HOOK_KINDS, hook_context, hook_failure, hooks_successful
from libs.topology.codes import Analysis
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import detection

DET = detection(cluster(r(7), r(8)))


def record(**update: Any) -> RecoveryRecord:
    rec = new_record(DET, epoch=1, node="n", now=NOW)
    for name, value in update.items():
        setattr(rec, name, value)
    return rec


def im_record(relocated: bool) -> RecoveryRecord:
    finding = DET.finding.model_copy(update={"code": Analysis.DEAD_INTERMEDIATE_MASTER})
    rec = new_record(DET.model_copy(update={"finding": finding}), epoch=1, node="n", now=NOW)
    rec.successor = k(9)
    if relocated:
        rec.begin_step(f"relocate:{k(9)}", NOW)
        rec.end_step(f"relocate:{k(9)}", NOW, StepOutcome.DONE)
    return rec


def closed(outcome: Outcome) -> RecoveryRecord:
    rec = record(successor=k(7))
    rec.close(outcome, "x", NOW)
    return rec


@pytest.mark.parametrize(
    ("name", "rec", "successful"),
    [
        ("running, not promoted yet", record(successor=k(7)), False),
        ("running, promoted", record(successor=k(7), promoted_at=NOW), True),
        ("succeeded", closed(Outcome.SUCCEEDED), True),
        ("failed (even if it had promoted)", closed(Outcome.FAILED), False),
        ("aborted", closed(Outcome.ABORTED), False),
        ("intermediate master, replicas not relocated yet", im_record(relocated=False), False),
        ("intermediate master, replicas relocated", im_record(relocated=True), True),
    ],
)
def test_hooks_successful(name: str, rec: RecoveryRecord, successful: bool) -> None:
    assert hooks_successful(rec) is successful, name


def test_post_hook_kinds_follow_orchestrator() -> None:
    assert POST_HOOK_KINDS[RecoveryKind.MASTER] == (HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER)
    assert POST_HOOK_KINDS[RecoveryKind.INTERMEDIATE_MASTER] == (
        HookKind.POST_INTERMEDIATE_MASTER_FAILOVER,
        HookKind.POST_FAILOVER,
    )
    assert POST_HOOK_KINDS[RecoveryKind.GRACEFUL_TAKEOVER][-1] is HookKind.POST_GRACEFUL_TAKEOVER
    assert POST_HOOK_KINDS[RecoveryKind.NON_WRITEABLE_MASTER] == (HookKind.POST_FAILOVER,)


@pytest.mark.parametrize(
    ("name", "rec", "successful", "expected"),
    [
        ("a master, successor named once successful", record(successor=k(7)), True,
         {"instance_type": "master", "is_master": True, "successor_port": 23307, "failed_port": 23306}),
        ("no successor before it is successful", record(successor=k(7)), False,
         {"successor_host": None, "successor_port": None}),
        ("an intermediate master", im_record(relocated=True), True,
         {"instance_type": "intermediate-master", "is_master": False, "successor_port": 23309}),
        ("one command hint for both takeover forms", record(command=f"{GRACEFUL}-auto"), False,
         {"command": GRACEFUL}),
        ("the analysis it was decided on", record(), False,
         {"failure_type": "DeadMaster", "count_replicas": 2, "replica_hosts": (str(k(7)), str(k(8))),
          "orchestrator_host": "leader-1", "auto_master_recovery": True,
          "auto_intermediate_master_recovery": False}),
    ],
)  # fmt: skip
def test_hook_context(name: str, rec: RecoveryRecord, successful: bool, expected: dict[str, Any]) -> None:
    policy = Policy(master_filters=("*",))
    context = hook_context(rec, policy, "leader-1", successful=successful)
    assert {key: getattr(context, key) for key in expected} == expected, name
    assert (context.failed_host, context.failure_cluster) == (MASTER.host, rec.cluster)


def _result(
    index: int, *, exit_code: int | None = 0, error: str | None = None, detached: bool = False
) -> HookResult:
    return HookResult(
        kind=HookKind.PRE_FAILOVER,
        index=index,
        command="x",
        rendered="x",
        started_at=NOW,
        exit_code=exit_code,
        error=error,
        detached=detached,
    )


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], None),
        ([_result(1), _result(2)], None),
        ([_result(1, exit_code=None, detached=True)], None),  # a detached hook never fails
        ([_result(1), _result(2, exit_code=3)], "PreFailoverProcesses hook #2 failed (exit code 3)"),
        ([_result(1, exit_code=None, error="timed out after 5s"), _result(2, exit_code=1)],
         "PreFailoverProcesses hook #1 failed (timed out after 5s)"),
    ],
)  # fmt: skip
def test_hook_failure(results: list[HookResult], expected: str | None) -> None:
    assert hook_failure(results, "PreFailoverProcesses") == expected
