"""The chaos checker's verdicts, table-driven: each case is a small recorded run and the checks that
must fail (all others must pass)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.chaos.invariants import Observations, RecoveryOutcome, Round, ServerSample, check

M, R1, R2 = "10.213.0.11:3306", "10.213.0.12:3306", "10.213.0.13:3306"


def master(name: str, pos: str = "0-1-10") -> ServerSample:
    return ServerSample(name, True, read_only=False, gtid_pos=pos)


def replica(name: str, of: str, pos: str = "0-1-10", io: bool = True, sql: bool = True) -> ServerSample:
    return ServerSample(name, True, read_only=True, master=of, io_running=io, sql_running=sql, gtid_pos=pos)


def dead(name: str) -> ServerSample:
    return ServerSample(name, False)


def rnd(at: float, *servers: ServerSample, consul: dict[str, str | None] | None = None) -> Round:
    return Round(at, {s.server: s for s in servers}, consul or {})


HEALTHY = (master(M), replica(R1, M), replica(R2, M))
AFTER = (dead(M), master(R1, "0-1-10,0-2-3"), replica(R2, R1, "0-1-10,0-2-3"))  # R1 promoted


@dataclass
class Case:
    name: str
    rounds: list[Round]
    fail: set[str]
    fault_ended_at: float = 1.0
    acked: frozenset[int] = frozenset()
    final_ids: frozenset[int] | None = None
    recoveries: list[RecoveryOutcome] = field(default_factory=list)
    converge_s: float | None = None


CASES = [
    Case(
        "clean failover",
        [rnd(0, *HEALTHY), rnd(1, dead(M), *HEALTHY[1:]), rnd(1.5, *AFTER, consul={"dc1": R1, "dc2": R1})],
        set(),
        recoveries=[RecoveryOutcome(R1)],
        converge_s=0.5,
    ),
    Case(
        "two writable masters for longer than the fence grace",
        [
            rnd(0, *HEALTHY),
            rnd(1, dead(M), *HEALTHY[1:]),
            rnd(2, *AFTER),
            rnd(3, master(M), *AFTER[1:]),  # the old master is back, writable
            rnd(4, master(M), *AFTER[1:]),  # ... and still writable a second later: split brain
            rnd(
                5,
                ServerSample(M, True, read_only=True, master=R1, io_running=True, sql_running=True),
                *AFTER[1:],
            ),
        ],
        {"one-writable-master"},
        converge_s=1.0,
    ),
    Case(
        "an old master fenced within the grace is fine",
        [
            rnd(0, *HEALTHY),
            rnd(1, *AFTER),
            rnd(2.0, master(M), *AFTER[1:]),
            rnd(
                2.3,
                ServerSample(M, True, read_only=True, master=R1, io_running=True, sql_running=True),
                *AFTER[1:],
            ),
        ],
        set(),
        converge_s=0.0,
    ),
    Case(
        "a replica left behind the dead master",
        [rnd(0, *HEALTHY), rnd(2, dead(M), master(R1, "0-1-10,0-2-3"), replica(R2, M, io=False))],
        {"replicas-follow-master", "converged"},
    ),
    Case(
        "a replica reported lost is excused, but must not follow the master",
        [rnd(0, *HEALTHY), rnd(2, dead(M), master(R1, "0-1-10,0-2-3"), replica(R2, M, io=False))],
        set(),
        recoveries=[RecoveryOutcome(R1, lost_replicas=frozenset({R2}))],
        converge_s=1.0,
    ),
    Case(
        "a replica reported lost that replicates after all: the audit lied",
        [rnd(0, *HEALTHY), rnd(2, *AFTER)],
        {"lost-means-lost"},
        recoveries=[RecoveryOutcome(R1, lost_replicas=frozenset({R2}))],
        converge_s=1.0,
    ),
    Case(
        "errant transactions on a replica",
        [
            rnd(0, *HEALTHY),
            rnd(2, dead(M), master(R1, "0-1-10,0-2-3"), replica(R2, R1, "0-1-10,0-2-3,0-3-1")),
        ],
        {"no-errant-gtids"},
        converge_s=1.0,
    ),
    Case(
        "acknowledged writes missing on the new master",
        [rnd(0, *HEALTHY), rnd(2, *AFTER)],
        {"acked-writes-kept"},
        acked=frozenset(range(100)),
        final_ids=frozenset(range(98)),
        converge_s=1.0,
    ),
    Case(
        "the audit names another successor",
        [rnd(0, *HEALTHY), rnd(2, *AFTER)],
        {"audit-agrees"},
        recoveries=[RecoveryOutcome(R2)],
        converge_s=1.0,
    ),
    Case(
        "a recovery record left open",
        [rnd(0, *HEALTHY), rnd(2, *AFTER)],
        {"recovery-closed"},
        recoveries=[RecoveryOutcome(R1, closed=False)],
        converge_s=1.0,
    ),
    Case(
        "Consul in one DC names the dead master (an unreachable DC is not judged)",
        [rnd(0, *HEALTHY), rnd(2, *AFTER, consul={"dc1": R1, "dc2": M, "dc3": None})],
        {"consul-names-master", "converged"},
    ),
    Case(
        "a DC's Consul not answering after the fault: not converged (every DC is back by then)",
        [rnd(0, *HEALTHY), rnd(2, *AFTER, consul={"dc1": R1, "dc2": R1, "dc3": None})],
        {"converged"},
    ),
    Case(
        "no master at all",
        [rnd(0, *HEALTHY), rnd(2, dead(M), replica(R1, M, io=False), replica(R2, M, io=False))],
        {"replicas-follow-master", "no-errant-gtids", "converged"},
    ),
    Case(
        "a chain: a replica under a replica that follows the master",
        [rnd(0, *HEALTHY), rnd(2, master(M), replica(R1, M), replica(R2, R1))],
        set(),
        converge_s=1.0,
    ),
    Case(
        "a chain broken above: the intermediate's IO thread stopped",
        [rnd(0, *HEALTHY), rnd(2, master(M), replica(R1, M, io=False), replica(R2, R1))],
        {"replicas-follow-master", "converged"},
    ),
    Case(
        "a replica under a dead intermediate master",
        [rnd(0, *HEALTHY), rnd(2, master(M), dead(R1), replica(R2, R1))],
        {"replicas-follow-master", "converged"},
    ),
    Case(
        "an intermediate master's recovery names its replicas' new master, not the master",
        [rnd(0, *HEALTHY), rnd(2, master(M), replica(R1, M), replica(R2, R1))],
        set(),
        recoveries=[RecoveryOutcome(R1, failed="10.213.0.14:3306", of_master=False)],
        converge_s=1.0,
    ),
    Case(
        "a replica lost by the failover stays lost after a later 'already fixed' record",
        [
            rnd(0, *HEALTHY, replica("10.213.0.14:3306", M)),
            rnd(2, dead(M), dead("10.213.0.14:3306"), master(R1), replica(R2, R1)),
            rnd(
                2.3,
                ServerSample(M, True, read_only=True, gtid_pos="0-1-10"),  # fenced, left alone
                replica("10.213.0.14:3306", M),  # lost: still under the old master
                master(R1),
                replica(R2, R1),
            ),
        ],
        set(),
        fault_ended_at=1.0,
        recoveries=[
            RecoveryOutcome(R1, frozenset({"10.213.0.14:3306"}), failed=M),
            RecoveryOutcome(None, failed=M),  # already fixed: acted on nothing
        ],
        converge_s=1.0,
    ),
    Case(
        "converged too late",
        [rnd(0, *HEALTHY), rnd(2, dead(M), *HEALTHY[1:]), rnd(12.5, *AFTER)],
        {"converged"},
        converge_s=11.5,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdicts(case: Case) -> None:
    verdict = check(
        Observations(
            rounds=case.rounds,
            fault_ended_at=case.fault_ended_at,
            acked_ids=case.acked,
            final_master_ids=case.final_ids,
            recoveries=case.recoveries,
        )
    )
    assert {c.name for c in verdict.failed()} == case.fail, verdict.checks
    assert verdict.ok is (not case.fail)
    if case.converge_s is None:
        assert verdict.converge_s is None
    else:
        assert verdict.converge_s == pytest.approx(case.converge_s)


def test_no_rounds_is_a_failure_not_a_pass() -> None:
    assert not check(Observations(rounds=[], fault_ended_at=0)).ok
