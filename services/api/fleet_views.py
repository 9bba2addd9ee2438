"""The API's in-memory fleet: every instance's `InstanceState`, grouped into clusters on demand.

Loaded from the read model at start and kept current by the projector after each committed batch, so
it always equals what the store holds; reads never touch the database for topology. Downtime comes
from the `baton_downtime` mirror and is applied when views are built (it changes the analysis).
Views are cached until the fleet or the downtime set changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from libs.models import InstanceKey
from libs.topology.view import ClusterView, InstanceState, group_clusters


class Fleet:
    def __init__(self, states: Iterable[InstanceState] = ()) -> None:
        self.states: dict[InstanceKey, InstanceState] = {s.key: s for s in states}
        self.version = 0
        self._cache: tuple[tuple[int, frozenset[InstanceKey]], list[ClusterView]] | None = None

    def update(self, changes: Mapping[InstanceKey, InstanceState | None]) -> None:
        for key, state in changes.items():
            if state is None:
                self.states.pop(key, None)
            else:
                self.states[key] = state
        if changes:
            self.version += 1

    def forget(self, key: InstanceKey) -> bool:
        found = self.states.pop(key, None) is not None
        self.version += 1
        return found

    def views(self, downtimed: frozenset[InstanceKey] = frozenset()) -> list[ClusterView]:
        stamp = (self.version, downtimed)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        states = (
            s.model_copy(update={"downtimed": True}) if s.key in downtimed else s
            for s in self.states.values()
        )
        views = group_clusters(states)
        self._cache = (stamp, views)
        return views
