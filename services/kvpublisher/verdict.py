"""Does a data center's Consul hold what baton_masters says? A pure comparison, used by reconcile.

`IN_SYNC`: every key Baton writes for the record holds exactly its value (extra keys under the alias,
if any, are not Baton's and are ignored). `AHEAD`: Consul holds a newer epoch than the record — the
record is stale and must not be written (the fence would refuse it anyway). `REPAIR`: anything else —
missing keys, a different master, a mixed state left by a non-atomic writer, an older epoch, or keys
orchestrator wrote with no epoch.
"""

from __future__ import annotations

from enum import StrEnum

from libs.kv.base import PublishedMaster
from libs.kv.layout import cluster_master_key, cluster_master_kv_pairs
from libs.models.events import MasterRecord


class Verdict(StrEnum):
    IN_SYNC = "in-sync"
    REPAIR = "repair"
    AHEAD = "ahead"


def judge(published: PublishedMaster | None, record: MasterRecord, prefix: str) -> Verdict:
    """Compare one cluster's keys as read from a store with the record that should be published."""
    if published is None:
        return Verdict.REPAIR
    if published.epoch is not None and published.epoch > record.epoch:
        return Verdict.AHEAD
    pairs = cluster_master_kv_pairs(record, prefix)
    main = cluster_master_key(prefix, published.alias)
    if published.value != pairs.get(main):
        return Verdict.REPAIR
    for key, value in pairs.items():
        if key != main and published.subkeys.get(key[len(main) + 1 :]) != value:
            return Verdict.REPAIR
    return Verdict.IN_SYNC
