"""How much does the analyzer's `Fleet.fold` cost while a fleet is being discovered (issue 18)?

Folds the snapshots of N instances one at a time, in a random order (replicas often before their
master), as the analyzer does while the probers discover a fleet: clusters of 1 master + 2 to 8
replicas, one cluster in four with an intermediate master. Then folds a second, newer round in which
5 % of the instances move to another cluster. Timed twice: with the incremental grouping of
`services/analyzer/fleet.py`, and with the full regroup (`group_clusters` over the whole fleet on every
new or moved instance) it replaced. Both end with the same clusters (checked).

    .venv/bin/python bench/fleet_fold.py [instances ...]      # default: 1000 2500 5000
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.view import InstanceState, group_clusters
from services.analyzer.fleet import Fleet

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FullRegroupFleet(Fleet):
    """The grouping before issue 18: every new or moved instance regroups the whole fleet."""

    def _regroup(self, key: InstanceKey, before: InstanceState | None, after: InstanceState) -> None:
        self._cluster_of.clear()
        self._members.clear()
        self._alias.clear()
        for view in group_clusters(self.states.values()):
            keys = tuple(s.key for s in view.instances)
            self._members[view.name] = keys
            self._alias[view.name] = view.alias
            for k in keys:
                self._cluster_of[k] = view.name


def _snapshot(key: InstanceKey, master: InstanceKey | None, at: float) -> InstanceSnapshot:
    rep = ReplicationStatus(master=master, io_state=IOThreadState.YES, sql_running=True) if master else None
    return InstanceSnapshot(key=key, probed_at=NOW + timedelta(seconds=at), reachable=True, replication=rep)


def build(n: int, rng: random.Random) -> tuple[list[InstanceSnapshot], list[InstanceSnapshot]]:
    """The discovery round (random order) and a newer round where 5 % move to another cluster."""
    masters: dict[InstanceKey, InstanceKey | None] = {}
    tops: list[InstanceKey] = []
    c = 0
    while len(masters) < n:
        top = InstanceKey(host=f"10.{c // 250}.{c % 250}.1", port=3306)
        masters[top] = None
        tops.append(top)
        upstream = top
        for i in range(rng.randint(2, 8)):
            key = InstanceKey(host=f"10.{c // 250}.{c % 250}.{i + 2}", port=3306)
            masters[key] = upstream
            if i == 0 and c % 4 == 0:
                upstream = key  # an intermediate master for the rest
        c += 1
    keys = list(masters)[:n]
    first = [_snapshot(k, masters[k], 1) for k in keys]
    rng.shuffle(first)
    second = []
    for k in keys:
        master = masters[k]
        if master is not None and rng.random() < 0.05:
            master = rng.choice(tops)
        second.append(_snapshot(k, master if master in masters else None, 2))
    return first, second


def run(fleet: Fleet, rounds: tuple[list[InstanceSnapshot], ...]) -> list[float]:
    out = []
    for snaps in rounds:
        t0 = time.process_time()
        for snap in snaps:
            fleet.fold(snap)
        out.append(time.process_time() - t0)
    return out


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 2500, 5000]
    print("| instances | clusters | incremental, CPU s: discovery / 5 % moved | full regroup: same |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        rounds = build(n, random.Random(n))
        incremental, full = Fleet(), FullRegroupFleet()
        a = run(incremental, rounds)
        b = run(full, rounds)
        views = group_clusters(incremental.states.values())
        assert incremental.clusters == full.clusters == sorted(v.name for v in views)
        for v in views:
            assert incremental._members[v.name] == full._members[v.name] == tuple(s.key for s in v.instances)
        print(f"| {n:,} | {len(views):,} | {a[0]:.3f} / {a[1]:.3f} | {b[0]:.2f} / {b[1]:.2f} |")


if __name__ == "__main__":
    main()
