"""The frozen topology view every decision is made on.

A probe that fails tells us nothing about an instance's place in the topology, so an `InstanceState`
keeps both the latest probe (is it reachable *now*?) and the last successful one (what did it look like
when we last saw it: who was its master, its GTID position, its settings). This is orchestrator's
`last_checked` / `last_seen` pair, made explicit.

Everything here is pure: no I/O, no clock reads (callers pass `now`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cached_property

from pydantic import BaseModel, ConfigDict

from libs.models import InstanceKey, InstanceSnapshot


class InstanceState(BaseModel):
    """What Baton knows of one instance: the latest probe and the last successful one."""

    model_config = ConfigDict(frozen=True)

    key: InstanceKey
    last_probe: InstanceSnapshot
    last_seen: InstanceSnapshot | None = None  # the latest reachable snapshot, if any
    downtimed: bool = False

    @property
    def info(self) -> InstanceSnapshot:
        """The best description of the instance: the last successful probe, else the latest attempt."""
        return self.last_seen if self.last_seen is not None else self.last_probe

    def is_valid(self, now: datetime, stale_after: timedelta) -> bool:
        """Reachable at its latest probe, and that probe is recent enough to trust."""
        return self.last_probe.reachable and now - self.last_probe.probed_at <= stale_after

    @property
    def master_key(self) -> InstanceKey | None:
        return self.info.master_key


def fold(state: InstanceState | None, snapshot: InstanceSnapshot) -> InstanceState:
    """Apply one new snapshot to what was known of its instance. Older snapshots never win."""
    if state is not None and snapshot.probed_at < state.last_probe.probed_at:
        return state
    last_seen = snapshot if snapshot.reachable else (state.last_seen if state else None)
    downtimed = state.downtimed if state else False
    return InstanceState(key=snapshot.key, last_probe=snapshot, last_seen=last_seen, downtimed=downtimed)


class ClusterView(BaseModel):
    """One replication cluster: its instances' states. `name` is the top master's `host:port`."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    instances: tuple[InstanceState, ...]

    @cached_property
    def by_key(self) -> Mapping[InstanceKey, InstanceState]:
        return {s.key: s for s in self.instances}

    def get(self, key: InstanceKey) -> InstanceState | None:
        return self.by_key.get(key)

    @cached_property
    def _children(self) -> Mapping[InstanceKey, tuple[InstanceState, ...]]:
        children: dict[InstanceKey, list[InstanceState]] = {}
        for state in self.instances:
            master = state.master_key
            if master is not None:
                children.setdefault(master, []).append(state)
        return {k: tuple(sorted(v, key=lambda s: s.key)) for k, v in children.items()}

    def replicas_of(self, key: InstanceKey) -> tuple[InstanceState, ...]:
        return self._children.get(key, ())

    @property
    def masters(self) -> tuple[InstanceState, ...]:
        """Instances in the view with no master of their own inside it (normally exactly one)."""
        return tuple(s for s in self.instances if s.master_key is None or s.master_key not in self.by_key)

    def depth_of(self, key: InstanceKey) -> int:
        """0 for a master, 1 for its replicas, ... (cycles count as their length)."""
        depth, seen = 0, {key}
        state = self.get(key)
        while state is not None and state.master_key is not None and state.master_key in self.by_key:
            if state.master_key in seen:
                break
            seen.add(state.master_key)
            depth += 1
            state = self.get(state.master_key)
        return depth


def root_of(key: InstanceKey, states: Mapping[InstanceKey, InstanceState]) -> InstanceKey:
    """Follow masters upward to the top of the chain. A co-master ring resolves to its smallest key."""
    return _roots_of([key], states, {})[key]


def _roots_of(
    keys: Iterable[InstanceKey],
    states: Mapping[InstanceKey, InstanceState],
    known: dict[InstanceKey, InstanceKey],
) -> dict[InstanceKey, InstanceKey]:
    """Roots of `keys`, memoised in `known`: a walk stops at the first instance whose root is known, so
    grouping a fleet visits each instance about once instead of once per descendant."""
    for key in keys:
        if key in known:
            continue
        path: list[InstanceKey] = [key]
        on_path = {key}
        current = key
        while True:
            state = states.get(current)
            master = state.master_key if state else None
            if master is None or master not in states:
                root = current
                break
            if master in known:
                root = known[master]
                break
            if master in on_path:
                ring = path[path.index(master) :]
                root = min(ring, key=lambda k: (k.host, k.port))
                break
            path.append(master)
            on_path.add(master)
            current = master
        for member in path:
            known[member] = root
    return known


def group_clusters(states: Iterable[InstanceState]) -> list[ClusterView]:
    """Split instance states into clusters by their top master. Alias: the master's `cluster_alias`."""
    by_key = {s.key: s for s in states}
    roots = _roots_of(by_key, by_key, {})
    members: dict[InstanceKey, list[InstanceState]] = {}
    for key, state in by_key.items():
        members.setdefault(roots[key], []).append(state)
    views = []
    for root, group in sorted(members.items(), key=lambda item: (item[0].host, item[0].port)):
        root_info = by_key[root].info
        name = str(root)
        views.append(
            ClusterView(
                name=name,
                alias=root_info.cluster_alias or name,
                instances=tuple(sorted(group, key=lambda s: (s.key.host, s.key.port))),
            )
        )
    return views
