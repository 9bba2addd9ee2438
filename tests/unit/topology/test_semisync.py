"""The semi-sync repair's decisions, table-driven (`libs/topology/semisync.py`): which replicas get
semi-sync enabled / disabled, in orchestrator's priority order, enough vs exact; the MariaDB one-ack
rule; the re-check and the verification; and the view adapter (priority from the snapshot, validity,
replication threads)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from libs.models import Flavor, InstanceSnapshot, IOThreadState, PromotionRule, ReplicationStatus
from libs.models import SemiSyncState as S
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.failover import master_plan
from libs.topology.plan import CandidateRules
from libs.topology.semisync import (
    MARIADB_ONE_ACK,
    SemiSyncMaster,
    SemiSyncPlan,
    SemiSyncReplica,
    semi_sync_plan,
    semi_sync_recheck,
    semi_sync_verified,
    semi_sync_view_plan,
)
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r

MUST, PREFER, NEUTRAL, PREFER_NOT, MUST_NOT = (
    PromotionRule.MUST,
    PromotionRule.PREFER,
    PromotionRule.NEUTRAL,
    PromotionRule.PREFER_NOT,
    PromotionRule.MUST_NOT,
)


def rep(n: int, enabled: bool = False, **kw: Any) -> SemiSyncReplica:
    return SemiSyncReplica(key=k(n), enabled=enabled, **kw)


def m(wait: int = 1, clients: int = 0, *, mariadb: bool = False) -> SemiSyncMaster:
    return SemiSyncMaster(key=MASTER, wait_count=wait, clients=clients, mariadb=mariadb)


# (id, master, replicas, exact, enable (ports), disable (ports), refused)
CASES: list[tuple[str, SemiSyncMaster, list[SemiSyncReplica], bool, list[int], list[int], bool]] = [
    # -- enough (RecoverLockedSemiSyncMaster): enable in priority order, never disable --------------
    ("enough-one-missing-lowest-key-first", m(1, 0), [rep(3), rep(2), rep(1)], False, [1], [], False),
    ("enough-priority-wins-over-key", m(1, 0), [rep(1), rep(2, priority=5)], False, [2], [], False),
    (
        "enough-rule-wins-over-key",
        m(1, 0),
        [rep(1, rule=PREFER_NOT), rep(2, rule=PREFER)],
        False,
        [2],
        [],
        False,
    ),
    ("enough-must-first", m(1, 0), [rep(1, rule=NEUTRAL), rep(2, rule=MUST)], False, [2], [], False),
    (
        "enough-priority-before-rule",
        m(1, 0),
        [rep(1, rule=MUST), rep(2, priority=2, rule=PREFER_NOT)],
        False,
        [2],
        [],
        False,
    ),
    ("enough-two-missing", m(3, 1), [rep(1, True), rep(2), rep(3), rep(4)], False, [2, 3], [], False),
    (
        "enough-enabled-but-not-acking-is-restarted",
        m(1, 0),
        [rep(1, True, acking=False), rep(2)],
        False,
        [1],
        [],
        False,
    ),
    ("enough-skips-enabled-acking", m(2, 1), [rep(1, True), rep(2)], False, [2], [], False),
    (
        "enough-never-disables",
        m(1, 0),
        [rep(1, True, replicating=False), rep(2), rep(3, True, priority=0)],
        False,
        [2],
        [],
        False,
    ),
    ("enough-excludes-not-replicating", m(1, 0), [rep(1, replicating=False), rep(2)], False, [2], [], False),
    ("enough-excludes-invalid", m(1, 0), [rep(1, valid=False), rep(2)], False, [2], [], False),
    ("enough-async-never-enabled", m(1, 0), [rep(1, priority=0), rep(2, priority=0)], False, [], [], True),
    ("enough-nothing-replicating", m(1, 0), [rep(1, replicating=False)], False, [], [], True),
    ("enough-no-replicas", m(1, 0), [], False, [], [], True),
    ("enough-partial", m(3, 0), [rep(1), rep(2, valid=False)], False, [1], [], False),
    ("enough-already-enough", m(1, 1), [rep(1, True), rep(2)], False, [], [], True),
    # -- MariaDB: one ack whatever the snapshot's wait count says -------------------------------
    ("mariadb-one-ack", m(3, 0, mariadb=True), [rep(1), rep(2), rep(3)], False, [1], [], False),
    ("mariadb-exact-one-ack", m(2, 2, mariadb=True), [rep(1, True), rep(2, True)], True, [], [2], False),
    # -- exact (EnforceExactSemiSyncReplicas): the first wait_count enabled, every other disabled ---
    ("exact-too-many", m(1, 2), [rep(1, True), rep(2, True)], True, [], [2], False),
    (
        "exact-priority-decides-who-stays",
        m(1, 2),
        [rep(1, True, priority=10), rep(2, True, priority=20)],
        True,
        [],
        [1],
        False,
    ),
    ("exact-swap", m(1, 1), [rep(1, True, rule=PREFER_NOT), rep(2, rule=PREFER)], True, [2], [1], False),
    ("exact-locked", m(2, 0), [rep(1), rep(2), rep(3, True)], True, [1, 2], [3], False),
    ("exact-async-disabled", m(1, 1), [rep(1, True), rep(2, True, priority=0)], True, [], [2], False),
    (
        "exact-excluded-left-alone",
        m(1, 1),
        [rep(1, True), rep(2, True, replicating=False)],
        True,
        [],
        [],
        True,
    ),
    ("exact-already-exact", m(1, 1), [rep(1, True), rep(2)], True, [], [], True),
]


@pytest.mark.parametrize(
    ("master", "replicas", "exact", "enable", "disable", "refused"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_semi_sync_plan(
    master: SemiSyncMaster,
    replicas: list[SemiSyncReplica],
    exact: bool,
    enable: list[int],
    disable: list[int],
    refused: bool,
) -> None:
    plan = semi_sync_plan(master, replicas, exact=exact)
    assert list(plan.enable) == [k(n) for n in enable]
    assert list(plan.disable) == [k(n) for n in disable]
    assert (plan.refusal is not None) is refused
    if refused:
        assert plan.refusal is not None and plan.refusal.startswith("cannot determine actions")
        assert not plan.ok


def test_plan_says_what_it_saw() -> None:
    plan = semi_sync_plan(
        m(2, 0, mariadb=True),
        [rep(1, valid=False), rep(2, replicating=False), rep(3, priority=0), rep(4, rule=MUST), rep(5)],
        exact=False,
    )
    assert plan.wait_count == 1 and MARIADB_ONE_ACK in plan.notes
    assert plan.candidates == (k(4), k(5)) and plan.asynchronous == (k(3),)
    assert plan.excluded == ((k(1), "last check not valid"), (k(2), "not replicating"))
    text = plan.summary()
    assert "enough" in text and f"enable {k(4)}" in text and MARIADB_ONE_ACK in text
    partial = semi_sync_plan(m(3, 0), [rep(1)], exact=False)
    assert partial.ok and any("only 1 of the 3" in n for n in partial.notes)


# -- re-check and verification ------------------------------------------------------------------------
def finding(code: Analysis, instance: Any = MASTER) -> Finding:
    return Finding(
        code=code,
        cluster=str(MASTER),
        alias="a",
        instance=instance,
        is_master=True,
        reachable=True,
        priority=2,
        actionable=True,
        reason="r",
    )


@pytest.mark.parametrize(
    ("codes", "proceeds"),
    [
        ([Analysis.LOCKED_SEMI_SYNC_MASTER], True),
        ([Analysis.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS], True),
        ([Analysis.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS], True),
        ([Analysis.NO_WRITEABLE_MASTER], False),
        ([], False),
    ],
)
def test_semi_sync_recheck(codes: list[Analysis], proceeds: bool) -> None:
    findings = [finding(c) for c in codes] + [finding(Analysis.LOCKED_SEMI_SYNC_MASTER, instance=k(9))]
    assert (semi_sync_recheck(findings, MASTER) is not None) is proceeds


@pytest.mark.parametrize(
    ("after", "ok"),
    [
        (SemiSyncPlan(master=MASTER, exact=False, wait_count=1, clients=1, refusal="nothing"), True),
        (SemiSyncPlan(master=MASTER, exact=False, wait_count=1, clients=0, enable=(k(1),)), False),
        (SemiSyncPlan(master=MASTER, exact=True, wait_count=1, clients=2, disable=(k(2),)), False),
        (SemiSyncPlan(master=MASTER, exact=True, wait_count=2, clients=1, refusal="nothing"), False),
    ],
)
def test_semi_sync_verified(after: SemiSyncPlan, ok: bool) -> None:
    assert (semi_sync_verified(after) is None) is ok


# -- the view adapter ---------------------------------------------------------------------------------
def snap(key: Any, **kw: Any) -> InstanceSnapshot:
    base: dict[str, Any] = {
        "key": key,
        "probed_at": NOW - timedelta(seconds=1),
        "reachable": True,
        "server_id": key.port,
    }
    base["flavor"] = Flavor.MARIADB
    base.update(kw)
    return InstanceSnapshot(**base)


def replica(
    n: int,
    *,
    enabled: bool = False,
    io: IOThreadState = IOThreadState.YES,
    priority: int | None = None,
    rule: PromotionRule = NEUTRAL,
    reachable: bool = True,
) -> InstanceState:
    s = snap(
        k(n),
        replication=ReplicationStatus(master=MASTER, io_state=io, sql_running=True),
        semi_sync=S(replica_enabled=enabled, replica_status=enabled and io is IOThreadState.YES),
        semi_sync_priority=priority,
        promotion_rule=rule,
    )
    if not reachable:
        down = InstanceSnapshot.unreachable(k(n), NOW, "refused")
        return InstanceState(key=k(n), last_probe=down, last_seen=s)
    return InstanceState(key=k(n), last_probe=s, last_seen=s)


def view(*replicas: InstanceState, flavor: Flavor = Flavor.MARIADB, clients: int = 0) -> ClusterView:
    master = snap(
        MASTER,
        flavor=flavor,
        semi_sync=S(
            master_enabled=True, master_status=True, master_clients=clients, master_wait_for_replica_count=1
        ),
    )
    return ClusterView(
        name=str(MASTER),
        alias="a",
        instances=(InstanceState(key=MASTER, last_probe=master, last_seen=master), *replicas),
    )


STALE = timedelta(seconds=6)


def test_view_plan_locked_master_enables_first_replicating_replica() -> None:
    v = view(
        replica(1, enabled=True, io=IOThreadState.NO),  # the semi-sync replica whose IO thread stopped
        replica(2),
        replica(3),
    )
    plan = semi_sync_view_plan(v, MASTER, NOW, STALE, exact=False)
    assert plan.enable == (k(2),) and plan.excluded == ((k(1), "not replicating"),)
    assert MARIADB_ONE_ACK in plan.notes


def test_view_plan_priority_from_the_snapshot_and_must_not_default() -> None:
    # no DetectSemiSyncEnforcedQuery: every replica priority 1 except must_not (0: asynchronous)
    v = view(replica(1, rule=MUST_NOT), replica(2, rule=PREFER_NOT))
    assert semi_sync_view_plan(v, MASTER, NOW, STALE, exact=False).enable == (k(2),)
    # DetectSemiSyncEnforcedQuery answered: its number decides, must_not included
    v = view(replica(1, priority=9, rule=MUST_NOT), replica(2, priority=1), replica(3, priority=0))
    plan = semi_sync_view_plan(v, MASTER, NOW, STALE, exact=False)
    assert plan.enable == (k(1),) and plan.asynchronous == (k(3),)


def test_view_plan_excludes_unreachable_and_connecting() -> None:
    v = view(replica(1, reachable=False), replica(2, io=IOThreadState.CONNECTING), replica(3))
    plan = semi_sync_view_plan(v, MASTER, NOW, STALE, exact=False)
    assert plan.enable == (k(3),)
    assert dict(plan.excluded) == {k(1): "last check not valid", k(2): "not replicating"}


def test_view_plan_mysql_wait_count_and_exact() -> None:
    master = snap(
        MASTER,
        flavor=Flavor.MYSQL,
        semi_sync=S(
            master_enabled=True, master_status=True, master_clients=3, master_wait_for_replica_count=2
        ),
    )
    top = InstanceState(key=MASTER, last_probe=master, last_seen=master)
    states = (top, *(replica(n, enabled=True) for n in (1, 2, 3)))
    v = ClusterView(name=str(MASTER), alias="a", instances=states)
    plan = semi_sync_view_plan(v, MASTER, NOW, STALE, exact=True)
    assert plan.wait_count == 2 and plan.disable == (k(3),) and not plan.enable and not plan.notes


def test_view_plan_unknown_master() -> None:
    assert not semi_sync_view_plan(view(), k(42), NOW, STALE, exact=False).ok


# -- failover: the successor gets the master side of semi-sync the failed master had ----------------
@pytest.mark.parametrize("enabled", [True, False])
def test_master_plan_carries_the_master_side_of_semi_sync(enabled: bool) -> None:

    view = cluster(r(1), r(2), failed=master(semi_sync=S(master_enabled=enabled)))
    plan = master_plan(view, MASTER, CandidateRules(), NOW)
    assert plan.ok and plan.semi_sync_master is enabled
    refused = master_plan(
        cluster(failed=master(semi_sync=S(master_enabled=enabled))), MASTER, CandidateRules(), NOW
    )
    assert not refused.ok and not refused.semi_sync_master  # no successor, nothing to carry


# -- failover: the successor gets as many semi-sync replicas as the failed master waited for --------
ON = S(replica_enabled=True, replica_status=True)


@pytest.mark.parametrize(
    ("replicas", "want"),
    [
        # the only semi-sync replica is promoted (best position): the next one in order is enabled
        ((r(1, pos="0-1-200", semi_sync=ON), r(2), r(3)), (k(2),)),
        # another replica has it on already: nothing to do
        ((r(1, pos="0-1-200", semi_sync=ON), r(2), r(3, semi_sync=ON)), ()),
        # a must_not replica is never made to acknowledge; an unreachable one cannot be
        ((r(1, pos="0-1-200", semi_sync=ON), r(2, rule=PromotionRule.MUST_NOT), r(3)), (k(3),)),
        ((r(1, pos="0-1-200", semi_sync=ON), r(2, reachable=False), r(3)), (k(3),)),
        # DetectSemiSyncEnforcedQuery's priority orders them (higher first)
        (
            (r(1, pos="0-1-200", semi_sync=ON), r(2, semi_sync_priority=1), r(3, semi_sync_priority=5)),
            (k(3),),
        ),
        # nobody left to acknowledge: nothing to enable
        ((r(1, pos="0-1-200", semi_sync=ON),), ()),
    ],
)
def test_failover_keeps_the_semi_sync_replicas_the_master_had(
    replicas: tuple[InstanceState, ...], want: tuple[Any, ...]
) -> None:
    view = cluster(*replicas, failed=master(semi_sync=S(master_enabled=True, master_clients=1)))
    plan = master_plan(view, MASTER, CandidateRules(), NOW)
    assert plan.ok and plan.successor == k(1), plan.reason
    assert plan.semi_sync_master and plan.semi_sync_replicas == want


def test_no_replica_side_changes_without_semi_sync_on_the_failed_master() -> None:
    view = cluster(r(1, pos="0-1-200", semi_sync=ON), r(2), failed=master())
    plan = master_plan(view, MASTER, CandidateRules(), NOW)
    assert plan.ok and not plan.semi_sync_master and plan.semi_sync_replicas == ()
