"""Fast and certain: which instances need fresh probes before the analyzer may decide about them.

A master (or intermediate master) that stops answering is a *suspect*. Whatever its replicas said
before it stopped answering is no evidence about its death, so the analyzer asks for probe-now of the
suspect and its replicas and decides only once every replica was probed after the suspect was first seen
failing (`since`). "Unreachable but replicas still connected" is confirmed once more a moment later
(`confirm_after`): after a crash the replicas' IO threads need ~10 ms to notice, and a probe-now can beat
them; and it needs a failing probe of the suspect as recent as the replicas' (a master that restarted
after its last failing probe would otherwise look "unreachable" to replicas already reconnected).
Nobody waits forever: past `hold_max` the analysis decides on what it has (stale data counts as
unreachable there anyway).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.codes import Analysis
from libs.topology.view import ClusterView, InstanceState

# Codes that say "unreachable, but replicas still hear from it": wait for a confirmation round.
UNCONFIRMED_CODES = frozenset(
    {
        Analysis.UNREACHABLE_MASTER,
        Analysis.UNREACHABLE_MASTER_WITH_LAGGING_REPLICAS,
        Analysis.UNREACHABLE_INTERMEDIATE_MASTER,
        Analysis.UNREACHABLE_INTERMEDIATE_MASTER_WITH_LAGGING_REPLICAS,
        Analysis.UNREACHABLE_CO_MASTER,
    }
)


@dataclass(frozen=True, slots=True)
class FreshnessParams:
    stale_after: timedelta
    confirm_after: timedelta = timedelta(milliseconds=100)
    hold_max: timedelta = timedelta(seconds=3)


def track_down_since(
    down_since: Mapping[InstanceKey, datetime], snapshot: InstanceSnapshot
) -> Mapping[InstanceKey, datetime]:
    """Fold a snapshot into "first failing probe of the current failure streak" per instance."""
    key = snapshot.key
    current = down_since.get(key)
    if snapshot.reachable:
        if current is None or snapshot.probed_at < current:
            return down_since
        updated = dict(down_since)
        del updated[key]
        return updated
    if current is not None and current <= snapshot.probed_at:
        return down_since
    updated = dict(down_since)
    updated[key] = snapshot.probed_at
    return updated


def suspect_since(
    state: InstanceState, now: datetime, stale_after: timedelta, down_since: datetime | None
) -> datetime | None:
    """When the instance started to look dead: its first failing probe, or when its last probe went
    stale. None when its latest probe is reachable and fresh."""
    probe = state.last_probe
    if not probe.reachable:
        return down_since if down_since is not None and down_since <= probe.probed_at else probe.probed_at
    stale_at = probe.probed_at + stale_after
    return stale_at if now > stale_at else None


def suspects(
    view: ClusterView,
    now: datetime,
    stale_after: timedelta,
    down_since: Mapping[InstanceKey, datetime],
) -> dict[InstanceKey, datetime]:
    """Instances with replicas in the view that are not valid now -> since when they look dead."""
    found: dict[InstanceKey, datetime] = {}
    for state in view.instances:
        if not view.replicas_of(state.key):
            continue
        since = suspect_since(state, now, stale_after, down_since.get(state.key))
        if since is not None:
            found[state.key] = since
    return found


def may_decide(
    view: ClusterView,
    key: InstanceKey,
    since: datetime,
    code: Analysis | None,
    now: datetime,
    params: FreshnessParams,
) -> bool:
    """Whether the evidence about suspect `key` is fresh enough to publish a decision on it."""
    replicas = view.replicas_of(key)
    if not replicas:
        return True
    oldest = min(r.last_probe.probed_at for r in replicas)
    newest = max(r.last_probe.probed_at for r in replicas)
    if code in UNCONFIRMED_CODES:
        # "Unreachable, yet its replicas hear from it" needs a failing probe of the suspect as recent as
        # the replicas' contradicting ones: it may be back. Unless it has not been probed for hold_max.
        state = view.get(key)
        own = state.last_probe.probed_at if state is not None else since
        if own < newest - params.confirm_after and now - own < params.hold_max:
            return False
    if now - since >= params.hold_max:
        return True
    if oldest < since:
        return False
    return code not in UNCONFIRMED_CODES or oldest >= since + params.confirm_after


def held_instances(
    view: ClusterView,
    suspected: Mapping[InstanceKey, datetime],
    codes: Mapping[InstanceKey, Analysis],
    now: datetime,
    params: FreshnessParams,
) -> set[InstanceKey]:
    """Suspects whose decision must wait for fresh probes (no transition is published for them)."""
    return {
        key
        for key, since in suspected.items()
        if not may_decide(view, key, since, codes.get(key), now, params)
    }


def probe_targets(view: ClusterView, key: InstanceKey) -> tuple[InstanceKey, ...]:
    """What to probe now for a suspect: itself and its replicas."""
    return (key, *(r.key for r in view.replicas_of(key)))


def evidence_at(view: ClusterView, key: InstanceKey) -> datetime | None:
    """The newest probe time among the instance and its replicas: when the evidence was gathered."""
    state = view.get(key)
    times = [r.last_probe.probed_at for r in view.replicas_of(key)]
    if state is not None:
        times.append(state.last_probe.probed_at)
    return max(times, default=None)
