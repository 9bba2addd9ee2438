"""An instance's errant GTIDs as orchestrator's `Instance.GtidErrant` shows them (`which-gtid-errant`).

Judged against the instance's master, with the servers above the master (its upstream chain) ignored,
exactly as the analysis judges errant transactions (`errant.errant_gtids`), from the last successful
snapshots. Pure: used by the API (from its read model) and by the recovery leader (from fresh probes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.errant import errant_gtids
from libs.topology.view import InstanceState


def upstream_chain(key: InstanceKey, known: Mapping[InstanceKey, InstanceState]) -> list[InstanceKey]:
    """The instance's master, its master's master, ... (stops at a loop or an unknown server)."""
    chain: list[InstanceKey] = []
    state = known.get(key)
    master = state.master_key if state else None
    while master is not None and master not in chain and master != key:
        chain.append(master)
        above = known.get(master)
        master = above.master_key if above else None
    return chain


def errant_of(replica: InstanceSnapshot, chain: Sequence[InstanceSnapshot]) -> str:
    """The replica's errant GTIDs against its master (`chain[0]`), "" when none or not judged."""
    if not chain:
        return ""
    return errant_gtids(replica, chain[0], chain)


def instance_errant(key: InstanceKey, known: Mapping[InstanceKey, InstanceState]) -> str:
    """`GtidErrant` of `key` from the last good snapshots of it and its upstream chain."""
    state = known.get(key)
    if state is None or state.last_seen is None:
        return ""
    chain = [known[k].last_seen for k in upstream_chain(key, known) if k in known]
    snaps = [s for s in chain if s is not None]
    if len(snaps) != len(chain):
        return ""
    return errant_of(state.last_seen, snaps)
