"""orchestrator's `which-cluster-osc-replicas`: replicas fit to be the control replicas of an online
schema change (pt-online-schema-change's `--check-slave-lag`), picked by orchestrator's heuristic
(`inst.GetClusterOSCReplicas`), pure.

In order, each stage adding to the list: the two busiest first-tier intermediate masters (most
replicas); then two replicas of the one intermediate master found, or one replica of each of two; then
up to two third-tier replicas; then up to two first-tier leaves. Only instances whose last check is valid
count. (orchestrator's `OSCIgnoreHostnameFilters` is not a Baton setting: nothing is filtered by name.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from libs.topology.view import ClusterView, InstanceState


def osc_replicas(view: ClusterView, now: datetime, stale_after: timedelta) -> list[InstanceState]:
    def usable(states: Iterable[InstanceState]) -> list[InstanceState]:
        return [s for s in states if s.is_valid(now, stale_after)]

    def busiest(states: Iterable[InstanceState]) -> list[InstanceState]:
        return sorted(states, key=lambda s: (-len(view.replicas_of(s.key)), str(s.key)))

    depth = {s.key: view.depth_of(s.key) for s in view.instances}

    def at(d: int) -> list[InstanceState]:
        return [s for s in view.instances if depth[s.key] == d]

    result: list[InstanceState] = []
    ims = usable(busiest(s for s in at(1) if view.replicas_of(s.key)))[:2]
    result.extend(ims)
    if len(ims) == 1:
        result.extend(usable(busiest(view.replicas_of(ims[0].key)))[:2])
    elif len(ims) == 2:
        for im in ims:
            result.extend(usable(busiest(view.replicas_of(im.key)))[:1])
    result.extend(usable(busiest(at(3)))[:2])
    result.extend(
        usable(sorted((s for s in at(1) if not view.replicas_of(s.key)), key=lambda s: str(s.key)))[:2]
    )
    return result
