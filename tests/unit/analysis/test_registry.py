"""The registry's invariants, the fast path's soundness, fingerprints and the binlog history fold."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus, SemiSyncState
from libs.topology.analysis import (
    Analysis,
    AnalysisHistory,
    AnalysisParams,
    analyze,
    describe,
    finding_fingerprint,
)
from libs.topology.context import AnalysisContext, HistoryRecorder
from libs.topology.index import ViewIndex
from libs.topology.problems import PROBLEMS, could_match
from libs.topology.view import ClusterView, InstanceState
from tests.unit.analysis.builder import NOW, build_case

A = Analysis

# orchestrator's evaluation order (reference §1a), binlog-server and group-replication codes aside.
ORCHESTRATOR_ORDER = [
    A.DEAD_MASTER_WITHOUT_REPLICAS,
    A.DEAD_MASTER,
    A.DEAD_MASTER_AND_REPLICAS,
    A.DEAD_MASTER_AND_SOME_REPLICAS,
    A.UNREACHABLE_MASTER_WITH_LAGGING_REPLICAS,
    A.UNREACHABLE_MASTER,
    A.LOCKED_SEMI_SYNC_MASTER,
    A.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS,
    A.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS,
    A.NO_WRITEABLE_MASTER,
    A.MASTER_SINGLE_REPLICA_NOT_REPLICATING,
    A.MASTER_SINGLE_REPLICA_DEAD,
    A.ALL_MASTER_REPLICAS_NOT_REPLICATING,
    A.ALL_MASTER_REPLICAS_NOT_REPLICATING_OR_DEAD,
    A.DEAD_CO_MASTER,
    A.DEAD_CO_MASTER_AND_SOME_REPLICAS,
    A.UNREACHABLE_CO_MASTER,
    A.ALL_CO_MASTER_REPLICAS_NOT_REPLICATING,
    A.DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA_FAILING_TO_CONNECT,
    A.DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA,
    A.DEAD_INTERMEDIATE_MASTER,
    A.DEAD_INTERMEDIATE_MASTER_AND_SOME_REPLICAS,
    A.DEAD_INTERMEDIATE_MASTER_AND_REPLICAS,
    A.UNREACHABLE_INTERMEDIATE_MASTER_WITH_LAGGING_REPLICAS,
    A.UNREACHABLE_INTERMEDIATE_MASTER,
    A.ALL_INTERMEDIATE_MASTER_REPLICAS_FAILING_TO_CONNECT_OR_DEAD,
    A.ALL_INTERMEDIATE_MASTER_REPLICAS_NOT_REPLICATING,
    A.FIRST_TIER_REPLICA_FAILING_TO_CONNECT_TO_MASTER,
]

# reference §1a "Which codes are actionable".
ACTIONABLE = {
    A.DEAD_MASTER,
    A.DEAD_MASTER_AND_SOME_REPLICAS,
    A.LOCKED_SEMI_SYNC_MASTER,
    A.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS,
    A.DEAD_INTERMEDIATE_MASTER,
    A.DEAD_INTERMEDIATE_MASTER_AND_SOME_REPLICAS,
    A.DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA_FAILING_TO_CONNECT,
    A.ALL_INTERMEDIATE_MASTER_REPLICAS_FAILING_TO_CONNECT_OR_DEAD,
    A.DEAD_CO_MASTER,
    A.DEAD_CO_MASTER_AND_SOME_REPLICAS,
    A.NO_WRITEABLE_MASTER,
}


def test_registry_follows_orchestrators_order_and_actionability() -> None:
    assert [p.code for p in PROBLEMS] == ORCHESTRATOR_ORDER
    assert {p.code for p in PROBLEMS if p.actionable} == ACTIONABLE
    for code in Analysis:
        assert describe(code)


M = InstanceKey(host="m")
TOP = InstanceKey(host="top")
R1 = InstanceKey(host="r1")


@st.composite
def contexts(draw: st.DrawFn) -> AnalysisContext:
    """Arbitrary (consistent) contexts for instance m, a replica of `top` unless it is a master."""
    r = draw(st.integers(0, 4))
    v = draw(st.integers(0, r))
    c = draw(st.integers(0, v))
    vr = draw(st.integers(0, c))
    f = draw(st.integers(0, v - c))
    is_master = draw(st.booleans())
    failing = draw(st.booleans())
    semi = SemiSyncState(
        master_enabled=draw(st.booleans()),
        master_status=draw(st.booleans()),
        master_clients=draw(st.integers(0, 3)),
        master_wait_for_replica_count=draw(st.integers(0, 3)),
    )
    replication = None
    if not is_master:
        replication = ReplicationStatus(
            master=TOP,
            io_state=IOThreadState.CONNECTING if failing else IOThreadState.YES,
            sql_running=True,
            last_io_errno=2003 if failing else 0,
        )
    snapshot = InstanceSnapshot(
        key=M,
        probed_at=NOW,
        reachable=True,
        replication=replication,
        semi_sync=semi,
        read_only=draw(st.booleans()),
    )
    state = InstanceState(key=M, last_probe=snapshot, last_seen=snapshot)
    top = InstanceSnapshot(key=TOP, probed_at=NOW, reachable=True)
    view = ClusterView(name="top:3306", alias="x", instances=(state, InstanceState(key=TOP, last_probe=top)))
    params = AnalysisParams(
        recover_non_writeable_master=draw(st.booleans()), enforce_exact_semi_sync_replicas=draw(st.booleans())
    )
    return AnalysisContext(
        view=view,
        index=ViewIndex.build(view),
        state=state,
        now=NOW,
        params=params,
        valid=draw(st.booleans()),
        is_master=is_master,
        is_co_master=draw(st.booleans()),
        replicas=(),
        replica_count=r,
        valid_replicas=v,
        replicating_replicas=vr,
        connected_replicas=c,
        failing_to_connect_replicas=f,
        lagging_replicas=draw(st.integers(0, r)),
        delayed_replicas=draw(st.integers(0, r)),
        binlog_unchanged_seconds=draw(st.none() | st.floats(0, 100)),
    )


@settings(max_examples=400)
@given(contexts())
def test_fast_path_never_hides_a_problem(ctx: AnalysisContext) -> None:
    if not could_match(ctx):
        assert [p.code for p in PROBLEMS if p.match(ctx)] == []


def _dead_master_view(**replica_overrides: object) -> tuple[ClusterView, AnalysisParams, AnalysisHistory]:
    broken = {"master": "m", "io": "Connecting", "errno": 2003, **replica_overrides}
    states, params, history = build_case(
        {"instances": {"m": {"reachable": False}, "r1": broken, "r2": broken}}
    )
    return ClusterView(name="m:3306", alias="m", instances=tuple(states)), params, history


def test_fingerprint_is_stable_and_ignores_counts_and_reason() -> None:
    view, params, _ = _dead_master_view()
    (finding,) = analyze(view, NOW, params)
    assert finding.code is Analysis.DEAD_MASTER
    again = analyze(view, NOW + timedelta(seconds=1), params)[0]
    assert finding_fingerprint(again) == finding_fingerprint(finding)
    changed = finding.model_copy(update={"valid_replicas": 1, "reason": "other words"})
    assert finding_fingerprint(changed) == finding_fingerprint(finding)
    for update in (
        {"code": Analysis.UNREACHABLE_MASTER},
        {"cluster": "other"},
        {"instance": InstanceKey(host="x")},
    ):
        assert finding_fingerprint(finding.model_copy(update=update)) != finding_fingerprint(finding)
    assert len(finding_fingerprint(finding)) == 32


def test_the_passage_of_time_makes_probes_stale() -> None:
    """Pure in `now`: the same view is healthy now and a dead master once its probes are old."""
    states, params, _ = build_case({"instances": {"m": {}, "r1": {"master": "m"}}})
    view = ClusterView(name="m:3306", alias="m", instances=tuple(states))
    assert analyze(view, NOW, params) == []
    later = analyze(view, NOW + timedelta(seconds=30), params)
    assert [f.code for f in later] == [Analysis.DEAD_MASTER_AND_REPLICAS]


def test_history_folds_binlog_coordinates() -> None:
    def snap(pos: int, at: int, reachable: bool = True) -> InstanceSnapshot:
        return InstanceSnapshot(
            key=M,
            probed_at=NOW + timedelta(seconds=at),
            reachable=reachable,
            binlog_file="b.1",
            binlog_pos=pos,
        )

    history = AnalysisHistory().observe(snap(100, 0))
    assert history.observe(snap(100, 5)) is history  # unchanged: still "since 0"
    assert history.unchanged_for(snap(100, 5), NOW + timedelta(seconds=12)) == 12
    assert history.observe(snap(100, 5, reachable=False)) is history
    moved = history.observe(snap(200, 6))
    assert moved.binlog_since[M].since == NOW + timedelta(seconds=6)
    assert moved.unchanged_for(snap(100, 7), NOW) is None  # coordinates differ from what is remembered
    assert moved.observe(snap(300, 1)) is moved  # an older snapshot does not rewind it


def _replica(
    count: int, at: float, pos: int = 965, period: float = 1.0, reachable: bool = True
) -> InstanceSnapshot:
    replication = ReplicationStatus(
        master=M,
        io_state=IOThreadState.YES,
        sql_running=True,
        read_master_log_file="b.1",
        read_master_log_pos=pos,
        heartbeat_period=period,
        received_heartbeats=count,
    )
    return InstanceSnapshot(
        key=R1, probed_at=NOW + timedelta(seconds=at), reachable=reachable, replication=replication
    )


def test_history_folds_received_marks() -> None:
    history = AnalysisHistory().observe(_replica(3, 0))
    assert history.observe(_replica(3, 1)) is history  # nothing received: still "since 0"
    assert history.received_nothing_for(_replica(3, 4)) == 4.0
    assert history.observe(_replica(3, 2, reachable=False)) is history
    beat = history.observe(_replica(4, 5))  # a heartbeat
    assert beat.received_since[R1].since == NOW + timedelta(seconds=5)
    assert beat.received_nothing_for(_replica(4, 5.5)) == 0.5
    assert beat.received_nothing_for(_replica(3, 6)) is None  # not the mark on record
    event = beat.observe(_replica(4, 6, pos=1211))  # an event, no heartbeat
    assert event.received_since[R1].since == NOW + timedelta(seconds=6)
    assert event.observe(_replica(9, 1)) is event  # an older snapshot does not rewind it
    off = _replica(3, 7, period=0)
    assert AnalysisHistory().observe(off).received_since == {}  # heartbeats off: silence means nothing
    assert event.received_nothing_for(off) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans(), st.booleans()), max_size=12))
def test_history_recorder_matches_the_pure_fold(steps: list[tuple[int, int, bool, bool]]) -> None:
    """The analyzer's O(1) recorder and `AnalysisHistory.observe` keep the same history."""
    recorder, pure = HistoryRecorder(), AnalysisHistory()
    for at, (count, pos, reachable, master) in enumerate(steps):
        snap = (
            InstanceSnapshot(
                key=M,
                probed_at=NOW + timedelta(seconds=at),
                reachable=reachable,
                binlog_file="b.1",
                binlog_pos=pos,
            )
            if master
            else _replica(count, at, pos=pos, reachable=reachable)
        )
        recorder.observe(snap)
        pure = pure.observe(snap)
    assert dict(recorder.history.binlog_since) == dict(pure.binlog_since)
    assert dict(recorder.history.received_since) == dict(pure.received_since)
