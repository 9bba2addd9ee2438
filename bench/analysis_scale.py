"""How long does analysing a whole fleet take? Target (issue 4): < 50 ms for 10,000 instances.

Builds a fleet of CLUSTERS clusters of 5 MariaDB instances (master, three replicas, one intermediate
master with a replica), with every replica's GTID position a little behind its master's (so the
errant-GTID check really compares) and 1 % of clusters broken in assorted ways. Times, over RUNS runs:
`group_clusters` over all instance states, `analyze` over all clusters, and both together; with the
GTID parse caches cleared before each run ("cold") and kept ("warm", the analyzer's steady state).

    .venv/bin/python bench/analysis_scale.py [clusters] [runs]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from libs.models import Flavor, InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology import gtid
from libs.topology.analysis import AnalysisParams, Finding, analyze
from libs.topology.view import ClusterView, InstanceState, group_clusters

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PARAMS = AnalysisParams()


def _snapshot(
    key: InstanceKey, server_id: int, master: InstanceKey | None, seq: int, **kw: object
) -> InstanceSnapshot:
    replication = None
    if master is not None:
        replication = ReplicationStatus(
            master=master,
            io_state=kw.pop("io", IOThreadState.YES),
            sql_running=True,
            last_io_errno=kw.pop("errno", 0),
            using_gtid="Slave_Pos",
        )
    position = f"0-{kw.pop('origin', server_id)}-{seq}"
    return InstanceSnapshot(
        key=key,
        probed_at=NOW - timedelta(seconds=1),
        reachable=True,
        server_id=server_id,
        flavor=Flavor.MARIADB,
        version="10.11.6-MariaDB-log",
        log_bin=True,
        log_slave_updates=True,
        binlog_format="ROW",
        gtid_mode="ON",
        gtid_binlog_pos=position,
        gtid_current_pos=position,
        binlog_file="bin.000001",
        binlog_pos=seq,
        replication=replication,
        replication_lag_seconds=0 if master is not None else None,
        read_only=master is not None,
    )


def build_fleet(clusters: int) -> list[InstanceState]:
    states: list[InstanceState] = []
    for c in range(clusters):
        host = f"10.{c // 250}.{c % 250}"
        m, r1, r2, im, r3 = (InstanceKey(host=f"{host}.{i}", port=3306) for i in range(1, 6))
        base = 1000 + c
        mid = c * 10 + 1
        broken = c % 100 == 0
        io = IOThreadState.CONNECTING if broken else IOThreadState.YES
        errno = 2003 if broken else 0
        snaps = [
            _snapshot(m, mid, None, base),
            _snapshot(r1, mid + 1, m, base - 1, origin=mid, io=io, errno=errno),
            _snapshot(r2, mid + 2, m, base - 2, origin=mid, io=io, errno=errno),
            _snapshot(im, mid + 3, m, base, origin=mid, io=io, errno=errno),
            _snapshot(r3, mid + 4, im, base - 3, origin=mid),
        ]
        for snap in snaps:
            latest = snap
            if broken and snap.key == m:
                latest = InstanceSnapshot.unreachable(m, snap.probed_at, "connection refused", code=2003)
            states.append(InstanceState(key=snap.key, last_probe=latest, last_seen=snap))
    return states


def _clear_caches() -> None:
    for cached in (gtid._parse_mysql, gtid.parse_mariadb, gtid.raw_mysql_errant, gtid.raw_mariadb_errant):
        cached.cache_clear()


def analyze_all(views: list[ClusterView]) -> list[Finding]:
    return [f for view in views for f in analyze(view, NOW, PARAMS)]


def _calibrate() -> float:
    """ms for 1,000,000 pure-Python additions: how fast (and how loaded) this machine is right now."""
    start = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.perf_counter() - start) * 1000


def main() -> None:
    clusters = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    states = build_fleet(clusters)
    n = len(states)
    samples: dict[str, list[float]] = {
        "group_clusters": [],
        "analyze, cold GTID caches": [],
        "analyze, warm": [],
    }
    cpu_warm: list[float] = []
    findings: list[Finding] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        views = group_clusters(states)
        samples["group_clusters"].append((time.perf_counter() - t0) * 1000)
        _clear_caches()
        t0 = time.perf_counter()
        findings = analyze_all(views)
        samples["analyze, cold GTID caches"].append((time.perf_counter() - t0) * 1000)
        views = group_clusters(states)  # fresh views: no per-view cached indexes carried over
        t0, c0 = time.perf_counter(), time.process_time()
        analyze_all(views)
        samples["analyze, warm"].append((time.perf_counter() - t0) * 1000)
        cpu_warm.append((time.process_time() - c0) * 1000)
    assert len(views) == clusters, len(views)
    codes: dict[str, int] = {}
    for finding in findings:
        codes[finding.code.value] = codes.get(finding.code.value, 0) + 1
    print(f"fleet: {n} instances in {clusters} clusters; findings per pass: {codes}")
    print(f"machine: 1M Python additions take {_calibrate():.0f} ms right now (a speed and load indicator)")
    for label, values in samples.items():
        median = statistics.median(values)
        print(
            f"{label:26s} median {median:6.1f} ms  min {min(values):6.1f} ms  "
            f"= {median * 1000 / n:5.2f} ms per 1,000 instances  ({runs} runs)"
        )
    print(f"{'analyze, warm (CPU time)':26s} median {statistics.median(cpu_warm):6.1f} ms")
    print("target: analyze < 50 ms for 10,000 instances")


if __name__ == "__main__":
    main()
