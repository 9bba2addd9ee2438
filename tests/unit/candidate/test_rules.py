"""The building blocks of candidate choice: reasons, replication compatibility, progress, the models."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from libs.config import Settings
from libs.models import Flavor, InstanceKey, PromotionRule, ReplicationStatus
from libs.recovery.options import candidate_rules
from libs.topology.candidate import (
    can_replicate_from,
    choose_candidate,
    compare_progress,
    effective_rule,
    fallback_plan,
    progress_rank,
    why_broken,
    why_not_promotable,
)
from libs.topology.plan import CandidateRules, DrainState, Plan, RegisteredRule, ReplicaReason
from libs.topology.view import InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r

A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
RULES = CandidateRules()


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (r(7), None),
        (r(7, rule=PromotionRule.PREFER_NOT), None),  # a preference, not a ban
        (r(7, reachable=False), "127.0.0.1:23307 is unreachable: connection refused"),
        (r(7, age=16), "127.0.0.1:23307 was last probed 16 s ago (stale after 15 s)"),
        (r(7, rule=PromotionRule.MUST_NOT), "127.0.0.1:23307 has promotion rule must_not"),
        (r(7, log_bin=False), "127.0.0.1:23307 has no binary logs"),
        (r(7, lsu=False), "127.0.0.1:23307 has log_slave_updates off"),
        (r(7, delay=86400), "127.0.0.1:23307 is delayed by 86400 s"),
    ],
)
def test_why_not_promotable(state: InstanceState, reason: str | None) -> None:
    got = why_not_promotable(state, master().info, RULES, NOW)
    assert (got is None) if reason is None else (got is not None and got.startswith(reason)), got


def test_why_not_promotable_geo() -> None:
    dc = CandidateRules(prevent_cross_data_center_master_failover=True)
    region = CandidateRules(prevent_cross_region_master_failover=True)
    assert why_not_promotable(r(7, dc="dc1"), master().info, dc, NOW) is None
    assert why_not_promotable(r(7, dc="dc2"), master().info, dc, NOW) == (
        "127.0.0.1:23307 is in dc2, failed master in dc1 and PreventCrossDataCenterMasterFailover is on"
    )
    assert why_not_promotable(r(7, dc="dc2"), master().info, RULES, NOW) is None
    assert why_not_promotable(r(7, region="eu"), master(region="eu").info, region, NOW) is None
    assert "PreventCrossRegionMasterFailover" in (
        why_not_promotable(r(7, region="us"), master(region="eu").info, region, NOW) or ""
    )
    # the failed master's placement unknown: the prevent option cannot be satisfied by a placed replica
    assert why_not_promotable(r(7, dc="dc1"), None, dc, NOW) is not None


def test_promotion_ignore_hostname_filters() -> None:
    rules = CandidateRules(promotion_ignore_hostname_filters=("^backup-", r"\.dr\."))
    assert why_not_promotable(r(7), master().info, rules, NOW) is None
    assert why_not_promotable(r(7, hostname="backup-3"), master().info, rules, NOW) == (
        "127.0.0.1:23307 matches PromotionIgnoreHostnameFilters '^backup-'"
    )
    assert why_not_promotable(r(7, report_host="db1.dr.example"), master().info, rules, NOW) is not None
    plan = choose_candidate(cluster(r(7, hostname="backup-1", pos="0-1-101"), r(8)), MASTER, rules, NOW)
    assert plan.successor == k(8) and plan.intermediate == k(7)
    with pytest.raises(ValidationError):
        CandidateRules(promotion_ignore_hostname_filters=("(",))


def test_registered_rule_wins_until_it_expires() -> None:
    state = r(7, rule=PromotionRule.PREFER)
    reg = {k(7): RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=NOW + timedelta(seconds=1))}
    rules = CandidateRules(registered=reg)
    assert effective_rule(state, rules, NOW) is PromotionRule.MUST_NOT
    assert effective_rule(state, rules, NOW + timedelta(seconds=1)) is PromotionRule.PREFER
    assert effective_rule(state, RULES, NOW) is PromotionRule.PREFER


@pytest.mark.parametrize(
    ("replica", "source", "reason"),
    [
        (r(7), r(8), None),
        (r(7, version="11.4"), r(8, version="10.11"), None),  # newer follows older
        (
            r(7, version="10.6"),
            r(8, version="10.11"),
            "MariaDB 10.11 on 127.0.0.1:23308 cannot serve MariaDB 10.6",
        ),
        (r(7, version="5.6", flavor=Flavor.MYSQL), r(8, version="8.0", flavor=Flavor.MYSQL), "MySQL 8.0 on"),
        (r(7, flavor=Flavor.MYSQL, version="8.0"), r(8), "runs mysql and cannot follow mariadb"),
        (r(7), r(8, log_bin=False), "127.0.0.1:23308 has no binary logs"),
        (r(7, server_id=5), r(8, server_id=5), "same server_id 5"),
        (r(7, fmt="STATEMENT"), r(8, fmt="ROW"), "logs STATEMENT and cannot re-log the ROW events"),
        (r(7, fmt="STATEMENT"), r(8, fmt="MIXED"), "cannot re-log the MIXED events"),
        (r(7, fmt="STATEMENT", lsu=False), r(8, fmt="ROW"), None),  # applies rows, never re-logs them
        (r(7, fmt="MIXED"), r(8, fmt="ROW"), None),  # MIXED re-logs row events fine
        (r(7, fmt="ROW"), r(8, fmt="STATEMENT"), None),  # SBR -> RBR is fine (a downgrade, not a break)
    ],
)
def test_can_replicate_from(replica: InstanceState, source: InstanceState, reason: str | None) -> None:
    got = can_replicate_from(replica.info, source.info)
    assert (got is None) if reason is None else (reason in (got or "")), got


def test_handshake_version_prefix_is_ignored() -> None:
    old = r(7, version="10.6").info
    new = r(8).info.model_copy(update={"version": "5.5.5-10.11.6-MariaDB-log"})
    assert can_replicate_from(old, new) is not None
    assert can_replicate_from(new, old) is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (r(7, pos="0-1-10"), r(8, pos="0-1-9"), 1),
        (r(7, pos="0-1-9"), r(8, pos="0-1-10"), -1),
        (r(7, pos="0-1-10,1-2-5"), r(8, pos="0-1-10,1-2-5"), 0),
        (r(7, pos="0-1-10,1-2-5"), r(8, pos="0-1-10"), 1),  # a domain the other never saw
        (r(7, pos="0-1-11,1-2-4"), r(8, pos="0-1-10,1-2-5"), None),
        (r(7, flavor=Flavor.MYSQL, pos=f"{A}:1-10"), r(8, flavor=Flavor.MYSQL, pos=f"{A}:1-5:7-10"), 1),
        (r(7, flavor=Flavor.MYSQL, pos=f"{A}:1-5"), r(8, flavor=Flavor.MYSQL, pos=f"{A}:6"), None),
    ],
)
def test_compare_progress(a: InstanceState, b: InstanceState, expected: int | None) -> None:
    assert compare_progress(a.info, b.info) == expected
    assert compare_progress(b.info, a.info) == (None if expected is None else -expected)


def test_progress_without_gtid_uses_executed_coordinates() -> None:
    def at(n: int, file: str, pos: int) -> InstanceState:
        state = r(n, pos="")
        assert state.info.replication is not None
        replication = state.info.replication.model_copy(
            update={
                "relay_master_log_file": file,
                "exec_master_log_pos": pos,
                "read_master_log_file": file,
                "read_master_log_pos": pos,
            }
        )
        return state.model_copy(
            update={
                "last_probe": state.info.model_copy(update={"replication": replication}),
                "last_seen": state.info.model_copy(update={"replication": replication}),
            }
        )

    s7, s8, s9 = at(7, "mysql-bin.000002", 900), at(8, "mysql-bin.000003", 100), at(9, "mysql-bin.000003", 50)
    ranks = progress_rank([s.info for s in (s7, s8, s9)])
    assert ranks == {k(8): 0, k(9): 1, k(7): 2}
    plan = choose_candidate(cluster(s7, s8, s9), MASTER, RULES, NOW)
    assert plan.successor == k(8)


def test_unparsable_gtid_falls_back_to_coordinates() -> None:
    assert compare_progress(r(7, pos="garbage").info, r(8, pos="0-1-5").info) == 0


def test_progress_rank_level_replicas_share_a_rank() -> None:
    ranks = progress_rank([r(7).info, r(8).info, r(9, pos="0-1-99").info])
    assert ranks == {k(7): 0, k(8): 0, k(9): 1}


def test_rules_round_trip_through_json() -> None:
    reg = {
        k(7): RegisteredRule(rule=PromotionRule.PREFER, expires_at=NOW),
        MASTER: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=NOW),
    }
    rules = CandidateRules(registered=reg, prevent_cross_data_center_master_failover=True)
    assert CandidateRules.model_validate_json(rules.model_dump_json()) == rules


def test_fail_and_delay_options_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="mutually exclusive"):
        CandidateRules(
            fail_master_promotion_if_sql_thread_not_up_to_date=True,
            delay_master_promotion_if_sql_thread_not_up_to_date=True,
        )


def test_delay_option_asks_to_wait_for_the_relay_log() -> None:
    delay = CandidateRules(delay_master_promotion_if_sql_thread_not_up_to_date=True)
    waiting = choose_candidate(cluster(r(7, applied=False), r(8, pos="0-1-99")), MASTER, delay, NOW)
    assert waiting.ok and waiting.successor == k(7) and waiting.wait_for_relay_log_apply
    assert "wait for the relay log to be applied first" in waiting.summary()
    default = choose_candidate(cluster(r(7, applied=False)), MASTER, RULES, NOW)
    assert default.ok and not default.wait_for_relay_log_apply


def test_lag_guard_uses_seconds_behind_master_without_lag_query() -> None:
    state = r(7, lag=None)
    assert state.info.replication is not None
    replication = state.info.replication.model_copy(update={"seconds_behind_master": 601})
    info = state.info.model_copy(update={"replication": replication})
    state = state.model_copy(update={"last_probe": info, "last_seen": info})
    rules = CandidateRules(fail_master_promotion_on_lag_minutes=10)
    plan = choose_candidate(cluster(state), MASTER, rules, NOW)
    assert not plan.ok and "lags 10.0 min" in plan.reason
    assert plan.passed_over_reason(k(7)) == f"chosen, but the promotion is refused: {plan.reason}"
    unknown = choose_candidate(cluster(r(7, lag=None)), MASTER, rules, NOW)
    assert unknown.ok  # no measure, no guard: orchestrator needs ReplicationLagQuery for it too


def test_plan_invariants_and_summary() -> None:
    with pytest.raises(ValidationError):
        Plan(failed_master=MASTER, cluster="c", ok=True)
    with pytest.raises(ValidationError):
        Plan(failed_master=MASTER, cluster="c", ok=False, successor=k(7))
    with pytest.raises(ValidationError):
        Plan(failed_master=MASTER, cluster="c", ok=True, successor=k(7), intermediate=k(7))
    plan = choose_candidate(
        cluster(r(7, rule=PromotionRule.MUST_NOT, pos="0-1-101"), r(8), r(9, reachable=False)),
        MASTER,
        RULES,
        NOW,
    )
    assert plan.two_step
    assert plan.summary() == (
        "replace failed master 127.0.0.1:23306 of 127.0.0.1:23306 in two steps: 127.0.0.1:23307 (most up to "
        "date) serves 127.0.0.1:23308 until it catches up, then 127.0.0.1:23308 is promoted; "
        "repoint 1 replica; lose 127.0.0.1:23309"
    )
    assert plan.replicas_to_repoint == (k(7),)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan  # audit round trip
    assert str(ReplicaReason(key=k(7), reason="x")) == "127.0.0.1:23307: x"
    refused = choose_candidate(cluster(), MASTER, RULES, NOW)
    assert refused.summary() == (
        "cannot replace failed master 127.0.0.1:23306 of 127.0.0.1:23306: 127.0.0.1:23306 has no replicas"
    )


def test_replicas_of_other_masters_are_not_candidates() -> None:
    other = r(8, pos="0-1-500")
    assert other.info.replication is not None
    moved = other.info.model_copy(
        update={"replication": ReplicationStatus(master=InstanceKey(host="127.0.0.1", port=23307))}
    )
    other = other.model_copy(update={"last_probe": moved, "last_seen": moved})
    plan = choose_candidate(cluster(r(7), other), MASTER, RULES, NOW)
    assert plan.successor == k(7) and plan.passed_over == () and plan.replicas_to_repoint == ()


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (r(7, sql_running=False), None),  # stopped by hand, no error: the executor restarts it
        (r(7, io_errno=2003, io_error="error connecting to master 'repl@m:3306'"), None),
        (r(7, io_errno=2013, io_error="Lost connection to MySQL server during query"), None),
        (r(7, io_errno=0, io_error=""), None),
        (
            r(7, sql_running=False, sql_errno=1146, sql_error="Table 'x.t' doesn't exist"),
            "127.0.0.1:23307 has a broken SQL thread (error 1146: Table 'x.t' doesn't exist)",
        ),
        (r(7, sql_errno=1032), "127.0.0.1:23307 has a broken SQL thread (error 1032: no message)"),
        (
            r(7, sql_running=False, sql_error="Slave SQL thread aborted"),
            "has a broken SQL thread (error Slave",
        ),
        (
            r(7, io_errno=1236, io_error="Got fatal error 1236 from master"),
            "127.0.0.1:23307 has a broken IO thread (error 1236: Got fatal error 1236 from master)",
        ),
        (
            r(7, io_errno=1593, io_error="Fatal error: The slave I/O thread stops"),
            "broken IO thread (error 1593",
        ),
    ],
)
def test_broken_replicas_are_not_promotable(state: InstanceState, reason: str | None) -> None:
    assert why_broken(state.info) == why_not_promotable(state, master().info, RULES, NOW)
    got = why_not_promotable(state, master().info, RULES, NOW)
    assert (got is None) if reason is None else (got is not None and reason in got), got


def test_errant_setting_refuses_only_under_never() -> None:
    errant = r(7, gtid_binlog_pos="0-1-100,0-107-3")
    failed = master(gtid_binlog_pos="0-1-100").info
    assert why_not_promotable(errant, failed, RULES, NOW) is None  # last-resort: a ranking matter
    assert why_not_promotable(errant, failed, CandidateRules(promote_errant="always"), NOW) is None
    never = CandidateRules(promote_errant="never")
    assert why_not_promotable(errant, failed, never, NOW) == (
        "127.0.0.1:23307 has errant GTIDs 0-107-3 and BatonPromoteReplicasWithErrantGTID is never"
    )
    assert why_not_promotable(errant, failed, never, NOW, errant="") is None  # the caller judged it clean
    assert why_not_promotable(errant, None, never, NOW) is None  # no master snapshot: cannot be judged
    with pytest.raises(ValidationError):
        CandidateRules(promote_errant="sometimes")  # type: ignore[arg-type]


def test_the_errant_setting_reaches_the_rules() -> None:
    assert candidate_rules(Settings()).promote_errant == "last-resort"
    settings = Settings(BatonPromoteReplicasWithErrantGTID="never")
    assert candidate_rules(settings).promote_errant == "never"


def test_drain_state_is_recorded_and_said() -> None:
    view = cluster(r(7, pos="0-1-100", io_pos="0-1-105"), r(8, pos="0-1-102"), r(9, pos="0-1-101"))
    pending = choose_candidate(view, MASTER, RULES, NOW)
    assert pending.successor == k(7) and pending.drain is DrainState.PENDING
    assert [u.key for u in pending.undrained] == [k(7)]
    assert pending.undrained[0].reason == (
        "127.0.0.1:23307 has not applied all it received yet (applied 0-1-100, received 0-1-105): "
        "ranked by what it received"
    )
    assert "ranked by" not in pending.summary()  # the executor drains it before promoting
    done = choose_candidate(view, MASTER, RULES, NOW, drain=DrainState.DONE)
    assert done.successor == k(7) and done.drain is DrainState.DONE
    assert done.undrained[0].reason.startswith(
        "127.0.0.1:23307 could not apply its relay log in time (applied 0-1-100, received 0-1-105)"
    )
    assert done.summary().endswith(
        "; relay log not applied in time on 127.0.0.1:23307: ranked by what it received"
    )
    drained = choose_candidate(cluster(r(7), r(8)), MASTER, RULES, NOW, drain=DrainState.DONE)
    assert drained.undrained == ()
    assert Plan.model_validate_json(done.model_dump_json()) == done


def test_fallback_to_the_next_candidate() -> None:
    view = cluster(
        r(7, pos="0-1-101"), r(8, pos="0-1-100"), r(9, pos="0-1-100", rule=PromotionRule.PREFER_NOT)
    )
    first = choose_candidate(view, MASTER, RULES, NOW)
    assert first.successor == k(7) and first.tried == ()
    second = fallback_plan(view, first, {k(7): "promote: read_only=0 failed"}, RULES, NOW)
    assert second.ok and second.successor == k(8)
    assert second.tried == (ReplicaReason(key=k(7), reason="promote: read_only=0 failed"),)
    assert second.passed_over_reason(k(7)) == (
        "127.0.0.1:23307 failed as a candidate in this recovery: promote: read_only=0 failed"
    )
    assert second.lost_reason(k(7)) == (
        "127.0.0.1:23307 has transactions 127.0.0.1:23308 will not have; it cannot serve as the two-step "
        "intermediate: 127.0.0.1:23307 failed as a candidate in this recovery: promote: read_only=0 failed"
    )
    assert second.summary().endswith("; after 127.0.0.1:23307 failed")
    third = fallback_plan(view, second, {k(8): "wait-applied timed out"}, RULES, NOW)
    assert third.successor == k(9) and [t.key for t in third.tried] == [k(7), k(8)]
    last = fallback_plan(view, third, {k(9): "unreachable"}, RULES, NOW)
    assert not last.ok and "no replica can be promoted" in last.reason
    assert [t.key for t in last.tried] == [k(7), k(8), k(9)]


def test_fallback_when_the_intermediate_fails() -> None:
    view = cluster(r(7, rule=PromotionRule.MUST_NOT, pos="0-1-101"), r(8), r(9, pos="0-1-101", lsu=False))
    first = choose_candidate(view, MASTER, RULES, NOW)
    assert first.intermediate == k(7) and first.successor == k(8)
    second = fallback_plan(view, first, {k(7): "wait-applied: lost connection"}, RULES, NOW)
    assert second.ok and second.intermediate is None
    # 7 and 9 both hold 0-1-101: without 7 as intermediate, promoting 9 (no log_slave_updates) is out
    assert second.successor == k(8) and {x.key for x in second.lost} == {k(7), k(9)}
    assert "failed as a candidate in this recovery: wait-applied: lost connection" in (
        second.passed_over_reason(k(7)) or ""
    )


def test_failed_plans_keep_the_audit_fields() -> None:
    never = CandidateRules(promote_errant="never")
    view = cluster(r(7, gtid_binlog_pos="0-1-100,0-107-3"), failed=master(gtid_binlog_pos="0-1-100"))
    plan = choose_candidate(view, MASTER, never, NOW, drain=DrainState.DONE, tried={k(8): "x"})
    assert not plan.ok and plan.drain is DrainState.DONE
    assert plan.errant_of(k(7)) == "0-107-3" and plan.errant_of(k(8)) == ""
    assert plan.tried == (ReplicaReason(key=k(8), reason="x"),)


def test_errant_chain_covers_servers_above_the_failed_master() -> None:
    # a failed intermediate-level master under a co-master: the co-master's writes reach the replicas
    # through it, so they are upstream, not errant
    top = InstanceKey(host="127.0.0.1", port=23399)
    failed = master(gtid_binlog_pos="0-1-100,1-99-7")
    assert failed.info.replication is None
    under = failed.info.model_copy(update={"replication": ReplicationStatus(master=top)})
    failed = failed.model_copy(update={"last_seen": under})
    above = r(99, server_id=99).model_copy(update={"key": top})
    above = above.model_copy(
        update={"last_seen": above.info.model_copy(update={"key": top, "replication": None, "server_id": 99})}
    )
    view = cluster(r(7, gtid_binlog_pos="0-1-100,1-99-9"), above, failed=failed)
    plan = choose_candidate(view, MASTER, RULES, NOW)
    assert plan.errant == () and plan.successor == k(7)
