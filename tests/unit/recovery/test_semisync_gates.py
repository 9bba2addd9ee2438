"""The semi-sync repair's gates and blocks (no MySQL, no NATS; the MySQL side is
tests/integration/recovery/test_semisync_repair.py): orchestrator's keys alone decide, the cluster filters do
not apply, it blocks only itself again, and a failover's block blocks it."""

from __future__ import annotations

import pytest

from libs.hooks import HookKind
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord, new_record
from libs.recovery.policy import Policy, block_for
from libs.recovery.recovery_hooks import POST_HOOK_KINDS
from libs.topology.codes import Analysis
from libs.topology.detection import Detection
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import detection
from tests.unit.recovery.test_non_writeable_and_fences import _refusal

DEAD = detection(cluster(r(1), r(2)), "inc-dead")  # DeadMaster of MASTER


def _semi(code: Analysis, incident: str) -> Detection:
    finding = DEAD.finding.model_copy(update={"code": code, "reachable": True, "replicating_replicas": 2})
    return Detection.model_validate(
        DEAD.model_dump() | {"incident": incident, "finding": finding.model_dump()}
    )


LOCKED = _semi(Analysis.LOCKED_SEMI_SYNC_MASTER, "inc-locked")
TOO_MANY = _semi(Analysis.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS, "inc-many")
HYPOTHESIS = _semi(Analysis.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS, "inc-hypo")


def _closed(det: Detection) -> RecoveryRecord:
    record = new_record(det, epoch=1, node="n", now=NOW)
    record.successor = MASTER if det is not DEAD else k(1)
    record.close(Outcome.SUCCEEDED, "x", NOW)
    return record


@pytest.mark.parametrize(
    ("policy", "det", "forced", "refused"),
    [
        (Policy(master_filters=("*",)), LOCKED, False, "filtered: RecoverLockedSemiSyncMaster and"),
        (Policy(master_filters=("*",)), LOCKED, True, "filtered: RecoverLockedSemiSyncMaster and"),
        (Policy(recover_locked_semi_sync_master=True), LOCKED, False, None),  # no cluster filter needed
        (Policy(enforce_exact_semi_sync_replicas=True), LOCKED, False, None),
        (Policy(enforce_exact_semi_sync_replicas=True), TOO_MANY, False, None),
        (
            Policy(recover_locked_semi_sync_master=True),
            HYPOTHESIS,
            False,
            "unhandled:",
        ),  # re-probed, not acted on
        (Policy(recover_locked_semi_sync_master=True), HYPOTHESIS, True, "unhandled:"),
    ],
)
async def test_keys_decide(policy: Policy, det: Detection, forced: bool, refused: str | None) -> None:
    got = await _refusal(policy, det, forced=forced)
    if refused is None:
        assert got is None
    else:
        assert got is not None and got.startswith(refused), got


def test_kind_and_hooks() -> None:
    for det in (LOCKED, TOO_MANY):
        assert new_record(det, epoch=1, node="n", now=NOW).kind is RecoveryKind.SEMI_SYNC
    assert new_record(HYPOTHESIS, epoch=1, node="n", now=NOW).kind is RecoveryKind.MASTER  # never recovered
    assert POST_HOOK_KINDS[RecoveryKind.SEMI_SYNC] == (HookKind.POST_FAILOVER,)


async def test_it_blocks_only_itself_and_a_failover_blocks_it() -> None:
    on = Policy(
        recover_locked_semi_sync_master=True, enforce_exact_semi_sync_replicas=True, master_filters=("*",)
    )
    mine = block_for(_closed(LOCKED), 600, NOW)
    assert mine is not None and mine.scope == "instance" and mine.instance == MASTER
    again = await _refusal(on, LOCKED.model_copy(update={"incident": "inc-locked-2"}), mine)
    assert again is not None and again.startswith("blocked:")
    assert await _refusal(on, TOO_MANY, mine) is None  # another repair of the master
    assert await _refusal(on, DEAD, mine) is None  # never blocks a failover
    failover = block_for(_closed(DEAD), 600, NOW)
    assert failover is not None and failover.scope == "cluster"
    blocked = await _refusal(on, LOCKED, failover)
    assert blocked is not None and blocked.startswith("blocked:")
