"""Fresh cluster views: what is known of the fleet with the snapshots just probed folded in.

Every recovery decision that rests on a fresh look (the re-check, the plan, the ranking after the
drain, a fallback, a takeover's plan, a manual command's view of its cluster) builds its views here, so
they all fold and group the same way: a fresh snapshot older than what is known never wins (`fold`),
and an instance seen only in memory keeps its last known place. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters


def fresh_views(
    known: Mapping[InstanceKey, InstanceState],
    fresh: Mapping[InstanceKey, InstanceSnapshot] | None = None,
    *,
    only: Iterable[InstanceKey] | None = None,
) -> list[ClusterView]:
    """Every cluster view over `known` with `fresh` folded in. With `only`, the known instances outside
    `only` are left out (the freshly probed ones are always in): a recovery's view of the instances it
    probed plus the failed one, never a cluster stitched from stale neighbours."""
    fresh = fresh or {}
    keys = set(fresh) | (set(known) if only is None else set(only))
    states: dict[InstanceKey, InstanceState] = {}
    for key in keys:
        state = known.get(key)
        if key in fresh:
            state = fold(state, fresh[key])
        if state is not None:
            states[key] = state
    return group_clusters(states.values())


def view_holding(views: Iterable[ClusterView], key: InstanceKey) -> ClusterView | None:
    """The view `key` belongs to (None: in none of them)."""
    return next((v for v in views if v.get(key) is not None), None)
