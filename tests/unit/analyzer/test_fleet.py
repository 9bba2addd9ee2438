"""The analyzer's fleet: folding snapshots (also older ones, at replay) and cluster membership."""

from __future__ import annotations

from datetime import timedelta

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.analysis import Analysis, AnalysisParams, analyze
from services.analyzer.fleet import Fleet, remember_seen
from tests.unit.analysis.builder import NOW

M = InstanceKey.parse("m")
IM = InstanceKey.parse("im")
R = InstanceKey.parse("r")


def up(key: InstanceKey, seconds: float, master: InstanceKey | None = None) -> InstanceSnapshot:
    replication = (
        ReplicationStatus(master=master, io_state=IOThreadState.YES, sql_running=True) if master else None
    )
    return InstanceSnapshot(
        key=key, probed_at=NOW + timedelta(seconds=seconds), reachable=True, replication=replication
    )


def down(key: InstanceKey, seconds: float) -> InstanceSnapshot:
    return InstanceSnapshot.unreachable(key, NOW + timedelta(seconds=seconds), "refused", code=2003)


def test_an_older_good_snapshot_only_fills_in_the_last_seen() -> None:
    state = remember_seen(None, down(IM, 10))
    assert state.last_seen is None
    state = remember_seen(state, up(IM, 5, master=M))
    assert state.last_probe.probed_at == NOW + timedelta(seconds=10)
    assert state.last_seen is not None and state.master_key == M
    assert remember_seen(state, up(IM, 4)) == state  # an even older one changes nothing
    assert remember_seen(state, down(IM, 3)) == state


def test_a_dead_intermediate_master_stays_in_its_cluster_after_a_replay() -> None:
    fleet = Fleet()
    fleet.fold(up(M, 1))
    fleet.fold(up(R, 1, master=IM))
    assert fleet.fold(down(IM, 2)) == "im:3306"  # never seen up: looks like its own master
    assert fleet.fold(up(IM, 0, master=M)) == "m:3306"  # the older good snapshot places it
    view = fleet.view("m:3306")
    assert view is not None
    assert {s.key for s in view.instances} == {M, IM, R}
    assert fleet.clusters == ["m:3306"]
    assert fleet.down_since == {IM: NOW + timedelta(seconds=2)}
    assert fleet.fold(down(IM, 1.5)) is None or fleet.down_since[IM] == NOW + timedelta(seconds=1.5)


def test_binlog_history_is_kept_per_instance() -> None:
    fleet = Fleet()
    first = up(M, 1).model_copy(update={"binlog_file": "bin.000001", "binlog_pos": 100})
    fleet.fold(first)
    fleet.fold(first.model_copy(update={"probed_at": NOW + timedelta(seconds=2)}))
    seen = fleet.history.binlog_since[M]
    assert (seen.file, seen.pos, seen.since) == ("bin.000001", 100, NOW + timedelta(seconds=1))
    fleet.fold(first.model_copy(update={"probed_at": NOW + timedelta(seconds=3), "binlog_pos": 200}))
    assert fleet.history.binlog_since[M].since == NOW + timedelta(seconds=3)
    assert fleet.history.unchanged_for(fleet.states[M].info, NOW + timedelta(seconds=5)) == 2.0


def replica(seconds: float, heartbeats: int) -> InstanceSnapshot:
    replication = ReplicationStatus(
        master=M,
        io_state=IOThreadState.YES,
        sql_running=True,
        heartbeat_period=1.0,
        received_heartbeats=heartbeats,
    )
    return InstanceSnapshot(
        key=R, probed_at=NOW + timedelta(seconds=seconds), reachable=True, replication=replication
    )


def test_a_replica_that_stops_hearing_from_an_unreachable_master_votes_it_dead() -> None:
    """Snapshots one at a time, as the analyzer folds them: the heartbeat count stops at 3 (the master
    hangs at ~2.5 s), the IO thread keeps saying Yes, the master's probes time out from 3 s on."""
    fleet = Fleet()
    fleet.fold(up(M, 0))
    for second in range(3):
        fleet.fold(replica(second, second + 1))
    fleet.fold(down(M, 3))

    def codes(at: float) -> list[Analysis]:
        view = fleet.view("m:3306")
        assert view is not None
        return [
            f.code
            for f in analyze(
                view, NOW + timedelta(seconds=at), AnalysisParams(heartbeat_periods_silent=3.0), fleet.history
            )
        ]

    for second in (3, 4, 5):  # nothing received since 2 s: 3 s of silence is not more than 3 periods
        fleet.fold(replica(second, 3))
    assert codes(5.1) == [Analysis.UNREACHABLE_MASTER]
    fleet.fold(replica(5.5, 3))
    view = fleet.view("m:3306")
    assert view is not None
    (finding,) = analyze(
        view, NOW + timedelta(seconds=5.6), AnalysisParams(heartbeat_periods_silent=3.0), fleet.history
    )
    assert finding.code is Analysis.DEAD_MASTER
    assert (finding.silent_replicas, finding.connected_replicas) == (1, 0)
    assert "1/1 replicas received no heartbeat for 3.5s (period 1s)" in finding.reason
    fleet.fold(replica(6, 4))  # it hears again (SIGCONT): merely unreachable
    assert codes(6.1) == [Analysis.UNREACHABLE_MASTER]
