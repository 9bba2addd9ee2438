"""`analyze(view, now) -> list[Finding]`: what is wrong with a cluster, decided on frozen snapshots.

For every instance that could have a problem, `context.build_context` counts its replicas, the first
matching entry of `problems.PROBLEMS` names the problem, and `structure.structure_warnings` adds the
structure warnings. The result is sorted (cluster, priority, instance, code) and every finding carries a
readable `reason`, which is both the log line and what the golden tests read.

The holistic rule lives in the registry: an unreachable master is dead only when its reachable replicas
agree that replication from it is broken, or that they have heard nothing from it (no event, no
heartbeat) for too many heartbeat periods; otherwise it is merely unreachable. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from libs.models import InstanceKey
from libs.topology.codes import Analysis
from libs.topology.context import (
    AnalysisContext,
    AnalysisHistory,
    AnalysisParams,
    build_context,
    is_failing_to_connect,
)
from libs.topology.errant import ErrantGtid
from libs.topology.index import ViewIndex
from libs.topology.problems import BY_CODE, PROBLEMS, Problem, first_match
from libs.topology.structure import structure_warnings
from libs.topology.view import ClusterView

__all__ = [
    "PROBLEMS",
    "Analysis",
    "AnalysisHistory",
    "AnalysisParams",
    "Finding",
    "analyze",
    "describe",
    "finding_fingerprint",
]

_WARNINGS_ONLY_PRIORITY = 9


class Finding(BaseModel):
    """One instance's problem (or structure warnings), with the counts it was decided on."""

    model_config = ConfigDict(frozen=True)

    code: Analysis
    cluster: str
    alias: str
    instance: InstanceKey
    master: InstanceKey | None = None  # the instance's own master, if it has one
    is_master: bool
    is_co_master: bool = False
    reachable: bool  # LastCheckValid
    last_error: str | None = None
    priority: int
    actionable: bool  # a recovery exists for this code
    downtimed: bool = False  # the instance itself is downtimed
    replicas_downtimed: bool = False  # all replicas downtimed and the replicas are the problem
    skippable: bool = False  # automatic recovery must ignore it (explicit recovery still works)
    replica_count: int = 0
    valid_replicas: int = 0
    replicating_replicas: int = 0
    connected_replicas: int = 0
    silent_replicas: int = 0  # IO thread "Yes" but nothing received for too many heartbeat periods
    failing_to_connect_replicas: int = 0
    lagging_replicas: int = 0
    delayed_replicas: int = 0
    downtimed_replicas: int = 0
    replicas: tuple[InstanceKey, ...] = ()
    structure_warnings: tuple[Analysis, ...] = ()
    errant_gtids: tuple[ErrantGtid, ...] = ()
    reason: str

    @property
    def triggers_recovery(self) -> bool:
        return self.actionable and not self.skippable


def describe(code: Analysis) -> str:
    """A one-line description of a code (primary or structure warning)."""
    problem = BY_CODE.get(code)
    if problem is not None:
        return problem.description
    return "No problem" if code is Analysis.NO_PROBLEM else f"Structure warning: {code.value}"


def analyze(
    view: ClusterView,
    now: datetime,
    params: AnalysisParams | None = None,
    history: AnalysisHistory | None = None,
) -> list[Finding]:
    """Every problem and structure warning of one cluster, sorted, NoProblem entries dropped.

    `history` (optional) says how long masters' binlog coordinates have been unchanged, which turns
    LockedSemiSyncMasterHypothesis into LockedSemiSyncMaster, and how long replicas have received
    nothing from their master (without it, only IO threads vote on an unreachable master).
    """
    params = params or AnalysisParams()
    valid_since = now - params.stale_after
    index = ViewIndex.build(view)
    children = index.children
    rings = index.rings
    findings: list[Finding] = []
    for state in index.candidates():
        token = (state.key.host, state.key.port)
        replicas = children.get(token)
        if replicas is None:
            probe = state.last_probe
            if token not in index.parent:
                if state.last_seen is None:
                    continue  # never seen and nothing depends on it: nothing to say yet
            elif not (
                probe.reachable
                and probe.probed_at >= valid_since
                and is_failing_to_connect(probe.replication)
            ):
                continue  # a leaf replica: only "failing to connect" applies to it
        ctx = build_context(
            view,
            index,
            state,
            replicas or (),
            now=now,
            params=params,
            valid_since=valid_since,
            is_co_master=token in rings,
            history=history,
        )
        finding = _finding(ctx, first_match(ctx), params)
        if finding is not None:
            findings.append(finding)
    findings.sort(key=lambda f: (f.cluster, f.priority, f.instance.host, f.instance.port, f.code.value))
    return findings


def _finding(ctx: AnalysisContext, problem: Problem | None, params: AnalysisParams) -> Finding | None:
    warnings, errant = structure_warnings(ctx)
    if problem is None and not warnings and not params.include_no_problem:
        return None
    code = problem.code if problem else Analysis.NO_PROBLEM
    replicas_downtimed = bool(
        problem is not None
        and problem.replicas_are_the_problem
        and ctx.replica_count > 0
        and ctx.downtimed_replicas == ctx.replica_count
    )
    info = ctx.info
    return Finding(
        code=code,
        cluster=ctx.view.name,
        alias=ctx.view.alias,
        instance=ctx.key,
        master=info.master_key,
        is_master=ctx.is_master,
        is_co_master=ctx.is_co_master,
        reachable=ctx.valid,
        last_error=None if ctx.valid else ctx.state.last_probe.error,
        priority=problem.priority if problem else _WARNINGS_ONLY_PRIORITY,
        actionable=problem.actionable if problem else False,
        downtimed=ctx.downtimed,
        replicas_downtimed=replicas_downtimed,
        skippable=ctx.downtimed or replicas_downtimed,
        replica_count=ctx.replica_count,
        valid_replicas=ctx.valid_replicas,
        replicating_replicas=ctx.replicating_replicas,
        connected_replicas=ctx.connected_replicas,
        silent_replicas=ctx.silent_replicas,
        failing_to_connect_replicas=ctx.failing_to_connect_replicas,
        lagging_replicas=ctx.lagging_replicas,
        delayed_replicas=ctx.delayed_replicas,
        downtimed_replicas=ctx.downtimed_replicas,
        replicas=tuple(sorted(r.key for r in ctx.replicas)),
        structure_warnings=warnings,
        errant_gtids=errant,
        reason=reason_for(ctx, problem, warnings, errant),
    )


def _role(ctx: AnalysisContext) -> str:
    if ctx.is_master:
        return "master"
    if ctx.is_co_master:
        return "co-master"
    return "intermediate master" if ctx.replica_count else "replica"


def _why(ctx: AnalysisContext) -> str:
    probe = ctx.state.last_probe
    if not probe.reachable:
        return probe.error or "probe failed"
    age = (ctx.now - probe.probed_at).total_seconds()
    return f"last successful probe {age:.1f}s ago" if not ctx.valid else "reachable"


def _io_error(ctx: AnalysisContext) -> str:
    replication = ctx.state.last_probe.replication
    if replication is None:
        return "not replicating"
    text = replication.last_io_error or f"IO thread {replication.io_state.value}"
    return f"{replication.last_io_errno}: {text}" if replication.last_io_errno else text


def _silence(ctx: AnalysisContext) -> str:
    periods = ctx.silent_periods
    period = f"{periods[0]:g}s" if len(periods) == 1 else f"{periods[0]:g}-{periods[-1]:g}s"
    return f"received no heartbeat for {ctx.silent_for:.1f}s (period {period})"


def _votes(ctx: AnalysisContext) -> str:
    """How the valid replicas agree that M is gone: broken replication, silence, or both."""
    v, r, s = ctx.valid_replicas, ctx.replica_count, ctx.silent_replicas
    if s == 0:
        return f"{v}/{r} replicas report broken replication from it"
    if s == v:
        return f"{s}/{r} replicas {_silence(ctx)}"
    return f"{v}/{r} replicas agree: {s} {_silence(ctx)}, {v - s} report broken replication from it"


def _one_vote(ctx: AnalysisContext) -> str:
    return _silence(ctx) if ctx.silent_replicas else "reports broken replication from it"


def reason_for(
    ctx: AnalysisContext,
    problem: Problem | None,
    warnings: tuple[Analysis, ...],
    errant: tuple[ErrantGtid, ...],
) -> str:
    """The human-readable sentence: the problem's template filled in, then any structure warnings."""
    semi = ctx.info.semi_sync
    fields = {
        "role": _role(ctx),
        "instance": str(ctx.key),
        "why": _why(ctx) if problem is not None else "",
        "R": ctx.replica_count,
        "V": ctx.valid_replicas,
        "VR": ctx.replicating_replicas,
        "C": ctx.connected_replicas,
        "F": ctx.failing_to_connect_replicas,
        "L": ctx.lagging_replicas,
        "D": ctx.delayed_replicas,
        "dead": ctx.replica_count - ctx.valid_replicas,
        "lag_limit": f"{ctx.params.reasonable_replication_lag_seconds:g}",
        "wait": semi.master_wait_for_replica_count,
        "clients": semi.master_clients,
        "stale": f"{ctx.binlog_unchanged_seconds or 0:.0f}",
        "master": str(ctx.info.master_key),
        "io_error": _io_error(ctx) if problem is not None else "",
        "votes": _votes(ctx),
        "one_vote": _one_vote(ctx),
    }
    parts = [problem.reason.format(**fields)] if problem else [f"{fields['role']} {fields['instance']}"]
    if warnings:
        parts.append("structure warnings: " + ", ".join(w.value for w in warnings))
    if errant:
        parts.append("errant GTIDs: " + "; ".join(f"{e.replica} has {e.gtids}" for e in errant))
    return "; ".join(parts)


def finding_fingerprint(finding: Finding) -> str:
    """A stable id for "this problem on this instance": the detection's deterministic Nats-Msg-Id.

    Covers the cluster, instance, code and structure warnings — not counts or the reason, which two
    analyzers may see at slightly different moments — so both publish the same id for the same problem.
    """
    canonical = "|".join(
        (
            finding.cluster,
            f"{finding.instance.host}:{finding.instance.port}",
            finding.code.value,
            ",".join(sorted(w.value for w in finding.structure_warnings)),
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
