"""The analyzer's in-memory fleet: instance states folded from snapshots, grouped into clusters.

Cluster membership is regrouped only when the topology may have moved (a new instance, or an instance
whose master or alias changed), and then incrementally: only the clusters the instance leaves or joins
are regrouped (its old cluster, its new master's, and, for a new instance, those of the instances that
already named it as their master), with `group_clusters` over just their members. Such a set is closed
under "follow the master", so the result is what a regroup of the whole fleet would give, at
O(size of those clusters) per change instead of O(fleet) (discovering a fleet one instance at a time
was O(fleet²)). Otherwise a snapshot only rebuilds its own cluster's frozen view, so analysing "the
affected cluster on every change" stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from opentelemetry.context import Context

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.context import HistoryRecorder
from libs.topology.freshness import track_down_since
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters


def remember_seen(state: InstanceState | None, snapshot: InstanceSnapshot) -> InstanceState:
    """Fold an *older* snapshot in: it can only supply a missing or older last successful probe."""
    if state is None or snapshot.probed_at >= state.last_probe.probed_at:
        return fold(state, snapshot)
    if not snapshot.reachable:
        return state
    if state.last_seen is not None and state.last_seen.probed_at >= snapshot.probed_at:
        return state
    return state.model_copy(update={"last_seen": snapshot})


def _shape(state: InstanceState | None) -> tuple[InstanceKey | None, str]:
    if state is None:
        return (None, "")
    return (state.master_key, state.info.cluster_alias)


class Fleet:
    """Mutable holder of frozen states (one task mutates it: the event loop)."""

    def __init__(self) -> None:
        self.states: dict[InstanceKey, InstanceState] = {}
        # Binlog coordinates and replicas' received marks over time; read-only during an analysis.
        self._recorder = HistoryRecorder()
        self.history = self._recorder.history
        self.down_since: Mapping[InstanceKey, datetime] = {}
        self.traces: dict[InstanceKey, Context] = {}
        self._cluster_of: dict[InstanceKey, str] = {}
        self._members: dict[str, tuple[InstanceKey, ...]] = {}
        self._alias: dict[str, str] = {}
        self._replicas: dict[InstanceKey, set[InstanceKey]] = {}  # a master named -> who names it

    def fold(self, snapshot: InstanceSnapshot, trace: Context | None = None) -> str | None:
        """Apply a snapshot; returns the name of the cluster it now belongs to (None if it was old)."""
        key = snapshot.key
        before = self.states.get(key)
        after = remember_seen(before, snapshot)
        if after is before:
            return None
        self.states[key] = after
        self._recorder.observe(snapshot)
        self.down_since = track_down_since(self.down_since, snapshot)
        if trace is not None:
            self.traces[key] = trace
        if before is None or _shape(before) != _shape(after):
            self._regroup(key, before, after)
        return self._cluster_of.get(key)

    def _regroup(self, key: InstanceKey, before: InstanceState | None, after: InstanceState) -> None:
        """Regroup the clusters `key` leaves or joins (see the module docstring)."""
        old_master, new_master = _shape(before)[0], after.master_key
        if old_master != new_master:
            if old_master is not None:
                named = self._replicas.get(old_master)
                if named is not None:
                    named.discard(key)
                    if not named:
                        del self._replicas[old_master]
            if new_master is not None:
                self._replicas.setdefault(new_master, set()).add(key)
        touched = {key, *self._replicas.get(key, ())}
        if new_master is not None:
            touched.add(new_master)
        affected = {key}
        for name in {self._cluster_of[k] for k in touched if k in self._cluster_of}:
            affected.update(self._members.pop(name))
            del self._alias[name]
        for view in group_clusters(self.states[k] for k in affected):
            keys = tuple(s.key for s in view.instances)
            self._members[view.name] = keys
            self._alias[view.name] = view.alias
            for k in keys:
                self._cluster_of[k] = view.name

    @property
    def clusters(self) -> list[str]:
        return sorted(self._members)

    def cluster_of(self, key: InstanceKey) -> str | None:
        return self._cluster_of.get(key)

    def view(self, name: str) -> ClusterView | None:
        """The frozen view of cluster `name` as of now (None if no such cluster)."""
        keys = self._members.get(name)
        if keys is None:
            return None
        return ClusterView(name=name, alias=self._alias[name], instances=tuple(self.states[k] for k in keys))

    def trace_of(self, view: ClusterView) -> Context | None:
        """The trace context of the most recently probed instance of the cluster."""
        newest = max(view.instances, key=lambda s: s.last_probe.probed_at, default=None)
        return self.traces.get(newest.key) if newest is not None else None
