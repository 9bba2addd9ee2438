"""Table-driven tests of `choose_candidate`: one row per constraint and per interplay of two.

Every row also checks the audit promise: each replica that is not the successor is in `passed_over`
with a non-empty sentence, and `lost` ⊆ replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from libs.models import Flavor, PromotionRule
from libs.topology.candidate import choose_candidate
from libs.topology.plan import CandidateRules, Plan, RegisteredRule
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r

P = PromotionRule
A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
B = "4f22ab58-71ca-11e1-9e33-c80aa9429562"
E = "5a33bc69-71ca-11e1-9e33-c80aa9429562"  # a replica's own uuid: its local writes are errant
MY: dict[str, Any] = {"flavor": Flavor.MYSQL, "version": "8.0"}
MY_MASTER = master(flavor=Flavor.MYSQL, version="8.0", server_uuid=A, gtid_executed=f"{A}:1-98")
DUP: dict[str, Any] = {
    "sql_running": False,
    "sql_errno": 1062,
    "sql_error": "Duplicate entry '5' for key 'PRIMARY'",
}
ALWAYS = CandidateRules(promote_errant="always")
NEVER = CandidateRules(promote_errant="never")


@dataclass
class Case:
    name: str
    replicas: list[InstanceState]
    successor: int | None  # port suffix, None: no plan
    intermediate: int | None = None
    lost: set[int] = field(default_factory=set)
    rules: CandidateRules = field(default_factory=CandidateRules)
    failed: InstanceState | None = None
    reason: str = ""  # substring of plan.reason when no plan
    why: dict[int, str] = field(default_factory=dict)  # substrings of passed_over (or lost) reasons
    errant: dict[int, str] | None = None  # the plan's errant sets, when the case is about them


def registered(n: int, rule: PromotionRule, valid_for: timedelta) -> CandidateRules:
    return CandidateRules(registered={k(n): RegisteredRule(rule=rule, expires_at=NOW + valid_for)})


# fmt: off
CASES = [
    # -- up-to-dateness --------------------------------------------------------------------------
    Case("most up to date wins", [r(7, pos="0-1-99"), r(8, pos="0-1-100"), r(9, pos="0-1-98")], 8,
         why={7: "less up to date than 127.0.0.1:23308"}),
    Case("level: lowest address wins the tie", [r(7), r(8)], 7, why={8: "wins the tie by address"}),
    Case("level executed: more received relay log wins", [r(7), r(8, io_pos="0-1-103")], 8),
    # -- delayed replicas --------------------------------------------------------------------------
    Case("delayed 24 h behind is passed over", [r(7, pos="0-1-40", delay=86400), r(8), r(9, pos="0-1-99")], 8,
         why={7: "127.0.0.1:23307 is delayed by 86400 s"}),
    Case("delayed but ahead: two-step through it", [r(7, pos="0-1-101", delay=86400), r(8)], 8,
         intermediate=7,
         why={7: "is delayed by 86400 s; it serves 127.0.0.1:23308 as the two-step intermediate"}),
    # -- binary logs ---------------------------------------------------------------------------------
    Case("no binlogs: not promoted, still kept", [r(7, log_bin=False), r(8)], 8,
         why={7: "127.0.0.1:23307 has no binary logs"}),
    Case("no binlogs and ahead: cannot be an intermediate, lost",
         [r(7, pos="0-1-101", log_bin=False), r(8)], 8, lost={7}),
    Case("no log_slave_updates and ahead: lost", [r(7, pos="0-1-101", lsu=False), r(8), r(9)], 8, lost={7},
         why={7: "log_slave_updates off"}),
    Case("only replica has no binlogs: no plan", [r(7, log_bin=False)], None,
         reason="no replica can be promoted"),
    # -- data centers and regions --------------------------------------------------------------------
    Case("same DC as failed master preferred when level", [r(7, dc="dc2"), r(8, dc="dc1")], 8,
         why={7: "127.0.0.1:23307 is in dc2, 127.0.0.1:23308 shares the failed master's dc1"}),
    Case("same DC preferred over other DC ahead: two-step", [r(7, dc="dc2", pos="0-1-101"), r(8)], 8,
         intermediate=7),
    Case("other DC alone is fine without the prevent option", [r(7, dc="dc2"), r(8, dc="dc3")], 7),
    Case("PreventCrossDataCenterMasterFailover: no plan", [r(7, dc="dc2"), r(8, dc="dc3")], None,
         rules=CandidateRules(prevent_cross_data_center_master_failover=True),
         reason="no replica can be promoted",
         why={7: "in dc2, failed master in dc1 and PreventCrossDataCenterMasterFailover is on"}),
    Case("PreventCrossDataCenterMasterFailover: other DC may still be intermediate",
         [r(7, dc="dc2", pos="0-1-101"), r(8)], 8, intermediate=7,
         rules=CandidateRules(prevent_cross_data_center_master_failover=True)),
    Case("PreventCrossRegionMasterFailover", [r(7, region="eu", pos="0-1-101"), r(8, region="us")], 8,
         intermediate=7, failed=master(region="us"),
         rules=CandidateRules(prevent_cross_region_master_failover=True),
         why={7: "PreventCrossRegionMasterFailover is on"}),
    # -- binlog formats ------------------------------------------------------------------------------
    Case("RBR over SBR: MIXED would downgrade ROW replicas", [r(7, fmt="MIXED"), r(8), r(9)], 8,
         why={7: "127.0.0.1:23307 logs MIXED and would downgrade ROW replicas"}),
    Case("RBR over SBR: MIXED ahead is an intermediate", [r(7, fmt="MIXED", pos="0-1-101"), r(8), r(9)], 8,
         intermediate=7),
    Case("STATEMENT cluster: promote STATEMENT, a ROW master would lose them",
         [r(7, fmt="ROW"), r(8, fmt="STATEMENT"), r(9, fmt="STATEMENT")], 8, failed=master(fmt="STATEMENT"),
         why={7: "promoting 127.0.0.1:23307 would lose 2 replicas (127.0.0.1:23308 logs STATEMENT and "
                 "cannot re-log the ROW events"}),
    # -- version mixes: decided by the count of replicas kept ---------------------------------------
    Case("one 10.11 + three 10.6: promote a 10.6, keep all",
         [r(7, version="10.11"), r(8, version="10.6"), r(9, version="10.6"), r(10, version="10.6")], 8,
         why={7: "would lose 3 replicas (MariaDB 10.11 on 127.0.0.1:23307 cannot serve MariaDB 10.6"}),
    Case("one 10.6 + three 10.11: the 10.6 keeps all (orchestrator would lose it)",
         [r(7, version="10.11"), r(8, version="10.6"), r(9, version="10.11"), r(10, version="10.11")], 8),
    Case("10.11 ahead of three 10.6: it cannot serve them, nor they follow it: it is lost",
         [r(7, version="10.11", pos="0-1-101"), r(8, version="10.6"), r(9, version="10.6"),
          r(10, version="10.6")], 8, lost={7}),
    Case("MySQL 5.7 ahead of two 5.6: keep the most replicas",
         [r(7, flavor=Flavor.MYSQL, version="5.7", pos=f"{A}:1-101"),
          r(8, flavor=Flavor.MYSQL, version="5.6", pos=f"{A}:1-100"),
          r(9, flavor=Flavor.MYSQL, version="5.6", pos=f"{A}:1-99")], 8, lost={7}),
    Case("MySQL 5.6 ahead of 5.7s: single step on the 5.6",
         [r(7, flavor=Flavor.MYSQL, version="5.6", pos=f"{A}:1-101"),
          r(8, flavor=Flavor.MYSQL, version="5.7", pos=f"{A}:1-100")], 7),
    # -- promotion rules -------------------------------------------------------------------------------
    Case("must_not most up to date: two-step ending on an allowed one",
         [r(7, rule=P.MUST_NOT, pos="0-1-101"), r(8), r(9, pos="0-1-99")], 8, intermediate=7,
         why={7: "127.0.0.1:23307 has promotion rule must_not"}),
    Case("must_not that cannot serve the successor: lost",
         [r(7, rule=P.MUST_NOT, pos="0-1-101", version="11.4"), r(8)], 8, lost={7}),
    Case("prefer beats neutral when level", [r(7), r(8, rule=P.PREFER)], 8,
         why={7: "127.0.0.1:23307 has promotion rule neutral, 127.0.0.1:23308 has prefer"}),
    Case("prefer behind neutral: two-step hands over to prefer",
         [r(7, pos="0-1-101"), r(8, rule=P.PREFER)], 8, intermediate=7),
    Case("must beats prefer", [r(7, rule=P.PREFER), r(8, rule=P.MUST)], 8),
    Case("prefer_not loses to neutral", [r(7, rule=P.PREFER_NOT), r(8)], 8),
    Case("prefer_not when nothing else", [r(7, rule=P.PREFER_NOT), r(8, rule=P.MUST_NOT)], 7),
    Case("prefer_not most up to date and only other is must_not", [r(7, rule=P.PREFER_NOT),
         r(8, rule=P.MUST_NOT, pos="0-1-99")], 7),
    Case("all must_not: no plan", [r(7, rule=P.MUST_NOT), r(8, rule=P.MUST_NOT)], None,
         reason="all reachable replicas are must_not"),
    Case("registered must_not overrides the snapshot's prefer", [r(7, rule=P.PREFER), r(8)], 8,
         rules=registered(7, P.MUST_NOT, timedelta(days=1)),
         why={7: "must_not"}),
    Case("expired registration is ignored", [r(7, rule=P.PREFER), r(8)], 7,
         rules=registered(7, P.MUST_NOT, timedelta(0))),
    Case("registered prefer lifts a neutral one", [r(7), r(8)], 8,
         rules=registered(8, P.PREFER, timedelta(minutes=5))),
    # -- downtime --------------------------------------------------------------------------------------
    Case("downtimed only when nothing else", [r(7, downtimed=True), r(8)], 8, why={7: "is downtimed"}),
    # -- reachability ---------------------------------------------------------------------------------
    Case("no reachable replicas", [r(7, reachable=False), r(8, reachable=False)], None,
         reason="no reachable replicas of 127.0.0.1:23306", why={7: "unreachable: connection refused"}),
    Case("no replicas at all", [], None, reason="has no replicas"),
    Case("unreachable replica is lost, even if it was ahead", [r(7, reachable=False, pos="0-1-101"), r(8)], 8,
         lost={7}, why={7: "unreachable"}),
    Case("stale probe cannot be trusted", [r(7, age=60, pos="0-1-101"), r(8)], 8, lost={7},
         why={7: "last probed 60 s ago (stale after 15 s)"}),
    # -- lag guards ------------------------------------------------------------------------------------
    Case("FailMasterPromotionOnLagMinutes trips", [r(7, lag=720), r(8, pos="0-1-99")], None,
         rules=CandidateRules(fail_master_promotion_on_lag_minutes=10),
         reason="127.0.0.1:23307 lags 12.0 min, at or over FailMasterPromotionOnLagMinutes=10",
         why={7: "lags 12.0 min"}),
    Case("FailMasterPromotionOnLagMinutes under the limit", [r(7, lag=300)], 7,
         rules=CandidateRules(fail_master_promotion_on_lag_minutes=10)),
    Case("FailMasterPromotionIfSQLThreadNotUpToDate trips", [r(7, applied=False)], None,
         rules=CandidateRules(fail_master_promotion_if_sql_thread_not_up_to_date=True),
         reason="has not applied its relay log (read mysql-bin.000003:5100, executed mysql-bin.000003:5000)"),
    Case("SQL-thread guard looks at the intermediate's data",
         [r(7, rule=P.MUST_NOT, pos="0-1-101", applied=False), r(8)], None,
         rules=CandidateRules(fail_master_promotion_if_sql_thread_not_up_to_date=True),
         reason="127.0.0.1:23307 has not applied its relay log"),
    # -- GTID flavors ----------------------------------------------------------------------------------
    Case("MariaDB multi-domain: ahead in every domain wins",
         [r(7, pos="0-1-100,1-2-49"), r(8, pos="0-1-100,1-2-50"), r(9, pos="0-1-99,1-2-50")], 8),
    Case("MariaDB multi-domain: diverged replica is lost",
         [r(7, pos="0-1-101,1-2-49"), r(8, pos="0-1-100,1-2-50"), r(9, pos="0-1-100,1-2-49")], 7, lost={8}),
    Case("diverged intermediates: the one that saves the most replicas",
         [r(7, pos="0-1-101,1-2-5", rule=P.MUST_NOT), r(8, pos="0-1-100,1-2-7", rule=P.MUST_NOT),
          r(9, pos="0-1-100,1-2-6", rule=P.MUST_NOT, lsu=False), r(10, pos="0-1-100,1-2-5")], 10,
         intermediate=8, lost={7}),
    Case("MariaDB: the slave position counts, not local errant writes",
         [r(7, gtid_current_pos="0-107-500"), r(8, pos="0-1-101")], 8),
    Case("MySQL GTID: superset wins",
         [r(7, flavor=Flavor.MYSQL, version="8.0", pos=f"{A}:1-98:100"),
          r(8, flavor=Flavor.MYSQL, version="8.0", pos=f"{A}:1-100")], 8),
    Case("MySQL GTID: multi-source superset as intermediate",
         [r(7, flavor=Flavor.MYSQL, version="8.0", pos=f"{A}:1-100,{B}:1-5", rule=P.MUST_NOT),
          r(8, flavor=Flavor.MYSQL, version="8.0", pos=f"{A}:1-100,{B}:1-4")], 8, intermediate=7),
    # -- received is not applied: replicas are ranked by what they hold ------------------------------------
    Case("received more, applied less: what it holds wins",
         [r(7, pos="0-1-100", io_pos="0-1-105"), r(8, pos="0-1-102")], 7,
         why={8: "less up to date than 127.0.0.1:23307 (counting what 127.0.0.1:23307 received but has not "
                 "applied yet)"}),
    Case("MySQL: Retrieved_Gtid_Set counts",
         [r(7, **MY, pos=f"{A}:1-100", io_pos=f"{A}:95-105"), r(8, **MY, pos=f"{A}:1-102")], 7),
    Case("no GTIDs: the read position counts, not the executed one",
         [r(7, pos="", exec_pos=5000, read_pos=5100), r(8, pos="", exec_pos=5050)], 7),
    Case("applying received transactions the successor lacks: lost",
         [r(7, pos="0-1-100", io_pos="0-1-105", log_bin=False), r(8, pos="0-1-102")], 8, lost={7},
         why={7: "127.0.0.1:23307 is applying received transactions 127.0.0.1:23308 will not have"}),
    Case("received, SQL thread stopped: kept, its relay log is dropped on repoint",
         [r(7, pos="0-1-100", io_pos="0-1-105", log_bin=False, sql_running=False), r(8, pos="0-1-102")], 8),
    Case("must_not holding received transactions nobody else has: two-step through it",
         [r(7, rule=P.MUST_NOT, pos="0-1-100", io_pos="0-1-103"), r(8, pos="0-1-101")], 8, intermediate=7,
         why={7: "two-step intermediate once it has applied its relay log"}),
    Case("delayed holding received transactions nobody else has: two-step, its delay lifted",
         [r(7, delay=3600, pos="0-1-90", io_pos="0-1-103"), r(8, pos="0-1-101")], 8, intermediate=7,
         why={7: "once it has applied its relay log (its SQL_Delay of 3600 s lifted for that)"}),
    Case("other DC holding received transactions nobody else has, cross-DC failover prevented: two-step",
         [r(7, dc="dc2", pos="0-1-100", io_pos="0-1-103"), r(8, pos="0-1-101")], 8, intermediate=7,
         rules=CandidateRules(prevent_cross_data_center_master_failover=True)),
    # -- errant transactions never count as progress ------------------------------------------------------
    Case("MySQL: errant on top of the same upstream data: the clean one wins, the errant one is kept",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5"), r(8, **MY, pos=f"{A}:1-100")], 8, failed=MY_MASTER,
         why={7: f"127.0.0.1:23307 has errant GTIDs {E}:1-5 and BatonPromoteReplicasWithErrantGTID is "
                 "last-resort"},
         errant={7: f"{E}:1-5"}),
    Case("MySQL: a lead made of errant transactions only is no lead (orchestrator counts them)",
         [r(7, **MY, pos=f"{A}:1-99,{E}:1-5"), r(8, **MY, pos=f"{A}:1-100")], 8, failed=MY_MASTER,
         rules=ALWAYS, why={7: "127.0.0.1:23307 is less up to date than 127.0.0.1:23308"}),
    Case("always: same upstream data, the clean one ranks first",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5"), r(8, **MY, pos=f"{A}:1-100")], 8, failed=MY_MASTER,
         rules=ALWAYS,
         why={7: f"127.0.0.1:23307 holds the same upstream transactions as 127.0.0.1:23308; its errant GTIDs "
                 f"{E}:1-5 do not count as progress"}),
    Case("last-resort: a clean neutral beats an errant prefer",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5", rule=P.PREFER), r(8, **MY, pos=f"{A}:1-100")], 8,
         failed=MY_MASTER),
    Case("always: the rule decides between errant prefer and clean neutral",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5", rule=P.PREFER), r(8, **MY, pos=f"{A}:1-100")], 7,
         failed=MY_MASTER, rules=ALWAYS),
    Case("last-resort: an errant replica alone is promoted",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5")], 7, failed=MY_MASTER, errant={7: f"{E}:1-5"}),
    Case("never: an errant replica alone is not promoted",
         [r(7, **MY, pos=f"{A}:1-100,{E}:1-5")], None, failed=MY_MASTER, rules=NEVER,
         reason=f"127.0.0.1:23307 has errant GTIDs {E}:1-5 and BatonPromoteReplicasWithErrantGTID is never"),
    Case("last-resort: an errant must_not ahead still serves as intermediate (no replica lost)",
         [r(7, **MY, pos=f"{A}:1-101,{E}:1-5", rule=P.MUST_NOT), r(8, **MY, pos=f"{A}:1-100")], 8,
         intermediate=7, failed=MY_MASTER),
    Case("never: an errant replica ahead is not an intermediate either: lost",
         [r(7, **MY, pos=f"{A}:1-101,{E}:1-5", rule=P.MUST_NOT), r(8, **MY, pos=f"{A}:1-100")], 8,
         lost={7}, failed=MY_MASTER, rules=NEVER),
    Case("MariaDB: a domain replicated from elsewhere is errant, not a lead",
         [r(7, pos="0-1-100,2-9-40", gtid_binlog_pos="0-1-100,2-9-40"),
          r(8, pos="0-1-100", gtid_binlog_pos="0-1-100")], 8,
         failed=master(gtid_binlog_pos="0-1-98"), errant={7: "2-9-40"}),
    Case("MariaDB: local writes are errant and recorded",
         [r(7, gtid_binlog_pos="0-1-100,0-107-101"), r(8, gtid_binlog_pos="0-1-100")], 8,
         failed=master(gtid_binlog_pos="0-1-100"), errant={7: "0-107-101"}),
    # -- broken replicas are not candidates ---------------------------------------------------------------
    Case("SQL thread error: not promoted, and lost when ahead", [r(7, pos="0-1-101", **DUP), r(8)], 8,
         lost={7},
         why={7: "127.0.0.1:23307 has a broken SQL thread (error 1062: Duplicate entry '5' for key "
                 "'PRIMARY')"}),
    Case("SQL thread error: not an intermediate either",
         [r(7, pos="0-1-101", rule=P.MUST_NOT, **DUP), r(8)], 8, lost={7}),
    Case("SQL thread error: its relay log does not count, it is kept",
         [r(7, pos="0-1-100", io_pos="0-1-105", **DUP), r(8, pos="0-1-101")], 8),
    Case("IO thread error other than losing the master: not promoted",
         [r(7, pos="0-1-101", io_errno=1236,
            io_error="Got fatal error 1236 from master when reading data from binary log"), r(8)], 8,
         lost={7},
         why={7: "127.0.0.1:23307 has a broken IO thread (error 1236: Got fatal error 1236"}),
    Case("IO thread lost the dead master: fine",
         [r(7, pos="0-1-101", io_errno=2013, io_error="error reconnecting to master"), r(8)], 7),
]

# fmt: on


def _run(case: Case) -> tuple[Plan, ClusterView]:
    view = cluster(*case.replicas, failed=case.failed)
    return choose_candidate(view, MASTER, case.rules, NOW), view


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_choose_candidate(case: Case) -> None:
    plan, view = _run(case)
    assert plan.successor == (k(case.successor) if case.successor else None), plan.summary()
    assert plan.ok is (case.successor is not None)
    assert plan.intermediate == (k(case.intermediate) if case.intermediate else None), plan.summary()
    assert {x.key for x in plan.lost} == {k(n) for n in case.lost}, plan.lost
    assert case.reason in plan.reason
    for n, text in case.why.items():
        said = [plan.passed_over_reason(k(n)) or "", plan.lost_reason(k(n)) or ""]
        assert any(text in reason for reason in said), said
    if case.errant is not None:
        assert {e.replica: e.gtids for e in plan.errant} == {k(n): g for n, g in case.errant.items()}
    # the audit promise: every replica that is not the successor has a reason
    replicas = {s.key for s in view.replicas_of(MASTER)}
    assert {x.key for x in plan.passed_over} == replicas - {plan.successor}
    assert all(x.reason for x in plan.passed_over + plan.lost)
    if plan.ok:
        kept = set(plan.replicas_to_repoint)
        assert kept | {x.key for x in plan.lost} | {plan.successor} == replicas
        assert not kept & {x.key for x in plan.lost}
