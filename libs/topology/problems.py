"""The problem registry: one entry per primary analysis code, evaluated in order, first match wins.

Order, conditions and actionability follow orchestrator 3.2.6 (reference §1a), with one deliberate
change, the holistic rule: for an unreachable M, "its replicas agree replication from it is broken" is
judged by C (valid replicas whose IO thread is connected), not by orchestrator's VR (IO *and* SQL
running). A replica whose SQL thread stopped on an error but whose IO thread still streams from M is
proof that M is alive; orchestrator would count it towards DeadMaster, Baton counts it against.
Orchestrator's VR still drives the "replicas are not replicating" codes of reachable masters, where a
stopped SQL thread *is* the problem. A replica whose IO thread says "Yes" but that has received nothing
(no event, no heartbeat) for more than `BatonHeartbeatPeriodsSilent` heartbeat periods while M does not
answer Baton is silent, not connected (`context.py`): a hung master is dead once its replicas stop
hearing from it, not a `slave_net_timeout` later.

`reason` templates are filled by `analysis.reason_for` (fields listed there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass

from libs.topology.codes import Analysis as A
from libs.topology.context import AnalysisContext as Ctx


@dataclass(frozen=True, slots=True)
class Problem:
    code: A
    description: str
    _: KW_ONLY
    priority: int  # lower is more urgent; findings of a cluster are ordered by it
    actionable: bool  # a recovery exists for it (orchestrator's getCheckAndRecoverFunction)
    match: Callable[[Ctx], bool]
    reason: str
    replicas_are_the_problem: bool = False  # skippable when all replicas are downtimed


def _dead(c: Ctx) -> bool:
    """Unreachable and no reachable replica is connected to it (IO thread down, or silent: nothing
    received for too many heartbeat periods)."""
    return not c.valid and c.connected_replicas == 0


def _unreachable(c: Ctx) -> bool:
    """Unreachable, yet some replica still streams from it (C > 0), honouring partial success."""
    if c.valid or c.connected_replicas == 0:
        return False
    return not c.partial or c.failing_to_connect_replicas > 0


def _lagging_all(c: Ctx) -> bool:
    return (
        c.lagging_replicas == c.replica_count
        and c.delayed_replicas < c.replica_count
        and c.connected_replicas > 0
    )


def _semi_sync_short(c: Ctx) -> bool:
    s = c.info.semi_sync
    wait = s.master_wait_for_replica_count
    return c.valid and s.master_enabled and s.master_status and wait > 0 and s.master_clients < wait


def _ime(c: Ctx) -> bool:
    """Has a master of its own. Co-masters match their own entries first, as in orchestrator."""
    return not c.is_master


def _too_many_semi_sync(c: Ctx) -> bool:
    s = c.info.semi_sync
    return (
        c.params.enforce_exact_semi_sync_replicas
        and c.is_master
        and c.valid
        and s.master_enabled
        and s.master_status
        and s.master_clients > s.master_wait_for_replica_count
    )


_DEAD = "{role} {instance} unreachable ({why})"
_ALIVE = "{role} {instance} is reachable"

PROBLEMS: tuple[Problem, ...] = (
    # --- master ------------------------------------------------------------------------------------
    Problem(
        A.DEAD_MASTER_WITHOUT_REPLICAS,
        "Master cannot be reached and has no replicas",
        priority=1,
        actionable=False,
        match=lambda c: c.is_master and not c.valid and c.replica_count == 0,
        reason=_DEAD + " and has no replicas",
    ),
    Problem(
        A.DEAD_MASTER,
        "Master cannot be reached and none of its replicas is replicating",
        priority=1,
        actionable=True,
        match=lambda c: c.is_master and _dead(c) and 0 < c.replica_count == c.valid_replicas,
        reason=_DEAD + " and {votes}",
    ),
    Problem(
        A.DEAD_MASTER_AND_REPLICAS,
        "Master and all of its replicas cannot be reached",
        priority=1,
        actionable=False,
        match=lambda c: c.is_master and not c.valid and c.replica_count > 0 and c.valid_replicas == 0,
        reason=_DEAD + " and none of its {R} replicas can be reached either",
    ),
    Problem(
        A.DEAD_MASTER_AND_SOME_REPLICAS,
        "Master cannot be reached; some replicas are unreachable and none replicates",
        priority=1,
        actionable=True,
        match=lambda c: c.is_master and _dead(c) and 0 < c.valid_replicas < c.replica_count,
        reason=_DEAD + "; {votes}, {dead} unreachable",
    ),
    Problem(
        A.UNREACHABLE_MASTER_WITH_LAGGING_REPLICAS,
        "Master cannot be reached; its replicas are connected but all lagging",
        priority=2,
        actionable=False,
        match=lambda c: c.is_master and not c.valid and _lagging_all(c),
        reason=_DEAD + "; {C}/{R} replicas still connected to it but all lag more than {lag_limit}s",
    ),
    Problem(
        A.UNREACHABLE_MASTER,
        "Master cannot be reached but its replicas still replicate",
        priority=2,
        actionable=False,
        match=lambda c: c.is_master and _unreachable(c),
        reason=_DEAD + " but {C}/{R} replicas are still connected to it: not a failover",
    ),
    Problem(
        A.LOCKED_SEMI_SYNC_MASTER,
        "Semi-sync master waits for more acks than it has semi-sync replicas, and writes are blocked",
        priority=2,
        actionable=True,
        match=lambda c: c.is_master and _semi_sync_short(c) and c.binlog_stale,
        reason="semi-sync master {instance} waits for {wait} ack(s) from {clients} semi-sync replica(s) "
        "and its binlog coordinates have not moved for {stale}s",
    ),
    Problem(
        A.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS,
        "Semi-sync master has fewer semi-sync replicas than acks it waits for",
        priority=3,
        actionable=False,
        match=lambda c: c.is_master and _semi_sync_short(c),
        reason="semi-sync master {instance} waits for {wait} ack(s) from {clients} semi-sync replica(s); "
        "writes may be blocked (binlog coordinates not seen stale yet)",
    ),
    Problem(
        A.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS,
        "Semi-sync master has more semi-sync replicas than it waits for",
        priority=4,
        actionable=True,
        match=_too_many_semi_sync,
        reason="semi-sync master {instance} has {clients} semi-sync replicas but waits for {wait}",
    ),
    Problem(
        A.NO_WRITEABLE_MASTER,
        "Master is read-only",
        priority=3,
        actionable=True,
        match=lambda c: (
            c.params.recover_non_writeable_master
            and c.is_master
            and c.valid
            and c.info.read_only
            and c.replicating_replicas > 0
        ),
        reason="master {instance} is read-only while {VR}/{R} replicas replicate from it",
    ),
    Problem(
        A.MASTER_SINGLE_REPLICA_NOT_REPLICATING,
        "Master is reachable; its only replica is not replicating",
        priority=4,
        actionable=False,
        match=lambda c: (
            c.is_master
            and c.valid
            and c.replica_count == 1 == c.valid_replicas
            and c.replicating_replicas == 0
        ),
        reason=_ALIVE + " but its only replica is not replicating",
    ),
    Problem(
        A.MASTER_SINGLE_REPLICA_DEAD,
        "Master is reachable; its only replica cannot be reached",
        priority=4,
        actionable=False,
        match=lambda c: c.is_master and c.valid and c.replica_count == 1 and c.valid_replicas == 0,
        reason=_ALIVE + " but its only replica cannot be reached",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.ALL_MASTER_REPLICAS_NOT_REPLICATING,
        "Master is reachable; none of its replicas replicates",
        priority=4,
        actionable=False,
        match=lambda c: (
            c.is_master
            and c.valid
            and c.replica_count > 1
            and c.valid_replicas == c.replica_count
            and c.replicating_replicas == 0
        ),
        reason=_ALIVE + " but none of its {R} replicas replicates",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.ALL_MASTER_REPLICAS_NOT_REPLICATING_OR_DEAD,
        "Master is reachable; its replicas are either unreachable or not replicating",
        priority=4,
        actionable=False,
        match=lambda c: (
            c.is_master
            and c.valid
            and c.replica_count > 1
            and 0 < c.valid_replicas < c.replica_count
            and c.replicating_replicas == 0
        ),
        reason=_ALIVE + " but none of its {R} replicas replicates ({dead} unreachable)",
        replicas_are_the_problem=True,
    ),
    # --- co-master ---------------------------------------------------------------------------------
    Problem(
        A.DEAD_CO_MASTER,
        "Co-master cannot be reached and none of its replicas is replicating",
        priority=1,
        actionable=True,
        match=lambda c: c.is_co_master and _dead(c) and 0 < c.replica_count == c.valid_replicas,
        reason=_DEAD + " and {votes}",
    ),
    Problem(
        A.DEAD_CO_MASTER_AND_SOME_REPLICAS,
        "Co-master cannot be reached; some replicas are unreachable and none replicates",
        priority=1,
        actionable=True,
        match=lambda c: c.is_co_master and _dead(c) and 0 < c.valid_replicas < c.replica_count,
        reason=_DEAD + "; {votes}, {dead} unreachable",
    ),
    Problem(
        A.UNREACHABLE_CO_MASTER,
        "Co-master cannot be reached but its replicas still replicate",
        priority=2,
        actionable=False,
        match=lambda c: c.is_co_master and not c.partial and _unreachable(c),
        reason=_DEAD + " but {C}/{R} replicas are still connected to it: not a failover",
    ),
    Problem(
        A.ALL_CO_MASTER_REPLICAS_NOT_REPLICATING,
        "Co-master is reachable; none of its replicas replicates",
        priority=4,
        actionable=False,
        # Baton (like percona for intermediate masters): V > 0, or an unreachable ring partner, already
        # reported on its own, would make its reachable partner report this too.
        match=lambda c: (
            c.is_co_master
            and c.valid
            and c.replica_count > 0
            and c.valid_replicas > 0
            and c.replicating_replicas == 0
        ),
        reason=_ALIVE + " but none of its {R} replicas replicates",
        replicas_are_the_problem=True,
    ),
    # --- intermediate master -----------------------------------------------------------------------
    Problem(
        A.DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA_FAILING_TO_CONNECT,
        "Intermediate master cannot be reached and its only replica fails to connect to it",
        priority=2,
        actionable=True,
        match=lambda c: (
            _ime(c)
            and _dead(c)
            and c.replica_count == 1 == c.valid_replicas
            and c.failing_to_connect_replicas == 1
        ),
        reason=_DEAD + " and its only replica fails to connect to it",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA,
        "Intermediate master cannot be reached and its only replica is not replicating",
        priority=2,
        actionable=False,
        match=lambda c: _ime(c) and _dead(c) and c.replica_count == 1 == c.valid_replicas,
        reason=_DEAD + " and its only replica {one_vote}",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.DEAD_INTERMEDIATE_MASTER,
        "Intermediate master cannot be reached and none of its replicas is replicating",
        priority=2,
        actionable=True,
        match=lambda c: _ime(c) and _dead(c) and 1 < c.replica_count == c.valid_replicas,
        reason=_DEAD + " and {votes}",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.DEAD_INTERMEDIATE_MASTER_AND_SOME_REPLICAS,
        "Intermediate master cannot be reached; some replicas are unreachable and none replicates",
        priority=2,
        actionable=True,
        match=lambda c: _ime(c) and _dead(c) and 0 < c.valid_replicas < c.replica_count,
        reason=_DEAD + "; {votes}, {dead} unreachable",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.DEAD_INTERMEDIATE_MASTER_AND_REPLICAS,
        "Intermediate master and all of its replicas cannot be reached",
        priority=2,
        actionable=False,
        match=lambda c: _ime(c) and not c.valid and c.replica_count > 0 and c.valid_replicas == 0,
        reason=_DEAD + " and none of its {R} replicas can be reached either",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.UNREACHABLE_INTERMEDIATE_MASTER_WITH_LAGGING_REPLICAS,
        "Intermediate master cannot be reached; its replicas are connected but all lagging",
        priority=3,
        actionable=False,
        match=lambda c: _ime(c) and not c.valid and c.replica_count > 0 and _lagging_all(c),
        reason=_DEAD + "; {C}/{R} replicas still connected to it but all lag more than {lag_limit}s",
    ),
    Problem(
        A.UNREACHABLE_INTERMEDIATE_MASTER,
        "Intermediate master cannot be reached but its replicas still replicate",
        priority=3,
        actionable=False,
        match=lambda c: _ime(c) and not c.partial and _unreachable(c),
        reason=_DEAD + " but {C}/{R} replicas are still connected to it",
    ),
    Problem(
        A.ALL_INTERMEDIATE_MASTER_REPLICAS_FAILING_TO_CONNECT_OR_DEAD,
        "Intermediate master is reachable; its replicas fail to connect to it or are unreachable",
        priority=3,
        actionable=True,
        match=lambda c: (
            _ime(c)
            and c.valid
            and c.replica_count > 1
            and c.replicating_replicas == 0
            and 0 < c.failing_to_connect_replicas == c.valid_replicas
        ),
        reason=_ALIVE + " but {F}/{R} replicas fail to connect to it and {dead} unreachable",
        replicas_are_the_problem=True,
    ),
    Problem(
        A.ALL_INTERMEDIATE_MASTER_REPLICAS_NOT_REPLICATING,
        "Intermediate master is reachable; none of its replicas replicates",
        priority=4,
        actionable=False,
        match=lambda c: (
            _ime(c)
            and c.valid
            and c.replica_count > 0
            and c.valid_replicas > 0
            and c.replicating_replicas == 0
        ),
        reason=_ALIVE + " but none of its {R} replicas replicates",
        replicas_are_the_problem=True,
    ),
    # --- replica -----------------------------------------------------------------------------------
    Problem(
        A.FIRST_TIER_REPLICA_FAILING_TO_CONNECT_TO_MASTER,
        "A direct replica of a reachable master fails to connect to it",
        priority=3,
        actionable=False,
        # Baton: only while the master itself answers; an unreachable master has its own finding.
        match=lambda c: not c.is_master and c.failing_to_connect and c.depth == 1 and c.master_valid,
        reason="replica {instance} fails to connect to its master {master} ({io_error})",
    ),
)

BY_CODE: Mapping[A, Problem] = {p.code: p for p in PROBLEMS}


def could_match(c: Ctx) -> bool:
    """False only when no entry of PROBLEMS can match: the fast path for healthy instances.

    Every entry needs one of: M unreachable; M a semi-sync master; M read-only (with the option on);
    a replica of M that is not replicating (VR < R); M failing to connect. A unit test checks this
    against the registry on random contexts.
    """
    if not c.valid or c.replicating_replicas < c.replica_count:
        return True
    info = c.state.last_probe
    if info.semi_sync.master_enabled or (c.params.recover_non_writeable_master and info.read_only):
        return True
    return c.failing_to_connect


def first_match(c: Ctx) -> Problem | None:
    """The first problem whose predicate holds, in registry order (orchestrator's precedence)."""
    if not could_match(c):
        return None
    for problem in PROBLEMS:
        if problem.match(c):
            return problem
    return None
