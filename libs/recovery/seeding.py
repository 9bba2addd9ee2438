"""Which clusters `baton_masters` should hold a master for, and what to write: pure (no I/O, `now` in).

A record in `baton_masters` is what the kvpublisher turns into Consul keys. Recoveries write one, but a
cluster that never failed over would have none, so Consul would not know its master until its first
failure. orchestrator writes each cluster's master KV entries when it first sees the cluster; Baton's
recovery leader does the same (*seeding*), and answers `submit-masters-to-kv-stores` from the same
decision.

A cluster's master, here, is its **unique live writable root**: the view has exactly one root (a
co-master ring has none: ambiguous), that root answered its latest probe within `stale_after`, it is
writable and it replicates from nobody. Anything less is not a master Baton may name on its own.

Per cluster (`decide`):
- `KEEP`: a record already names that master (under the cluster's alias, or under another key: a
  failover records a cluster under the alias it had then, and a cluster known by its master's name is
  renamed by the failover, so a record naming one of its members covers it);
- `CREATE`: no record covers the cluster (the seed): cluster name, alias, master, the leader's epoch,
  no recovery uid, under `kv_key(alias)`;
- `REPLACE` (only the operator's submit uses it; seeding never does): the record names another server,
  which is not a live writable master anywhere now;
- `SKIP`, with the reason: no unique live writable master; the alias is shared by several clusters
  that each have one (which one Consul should name is not Baton's guess); the record names a server that
  is itself a live writable master (two writable masters claim the alias); the record holds a newer epoch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.bus.subjects import kv_key
from libs.kv.layout import cluster_master_kv_pairs
from libs.models import InstanceKey, MasterRecord
from libs.recovery.masters import master_record
from libs.topology.succession import newest_record_naming
from libs.topology.view import ClusterView, InstanceState


class Action(StrEnum):
    CREATE = "create"
    KEEP = "keep"
    REPLACE = "replace"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    view: ClusterView
    action: Action
    key: str  # the baton_masters key the cluster's record lives (or would live) under
    record: MasterRecord | None = None  # CREATE/REPLACE: what to write; KEEP: the record held
    current: MasterRecord | None = None  # what baton_masters holds for the cluster now
    reason: str = ""  # SKIP: why


def writable_master(
    view: ClusterView, now: datetime, stale_after: timedelta
) -> tuple[InstanceState | None, str]:
    """The view's unique live writable root, else None and why not."""
    roots = view.masters
    if not roots:
        return None, f"cluster {view.name} has no root (co-master ring): no unique master"
    if len(roots) > 1:
        names = ", ".join(str(s.key) for s in roots)
        return None, f"cluster {view.name} has {len(roots)} roots ({names}): no unique master"
    root = roots[0]
    if not root.is_valid(now, stale_after):
        return None, f"master {root.key} is not live (latest probe failed or older than {stale_after})"
    if root.info.master_key is not None:
        return None, f"{root.key} replicates from {root.info.master_key}, which Baton does not know"
    if root.info.read_only:
        return None, f"master {root.key} is read-only"
    return root, ""


def recorded(view: ClusterView, records: Mapping[str, MasterRecord]) -> tuple[str, MasterRecord | None]:
    """The key and record covering `view`: the record under its alias, else the newest record naming
    one of its members as master (the cluster was recorded under another alias), else none."""
    key = kv_key(view.alias)
    if key in records:
        return key, records[key]
    newest = newest_record_naming(view, records.values())
    if newest is not None:
        return kv_key(newest.alias), newest
    return key, None


def decide(
    views: Iterable[ClusterView],
    records: Mapping[str, MasterRecord],
    now: datetime,
    stale_after: timedelta,
    epoch: int,
) -> list[Decision]:
    """One decision per view, in the views' order (see the module doc). `records` is baton_masters by
    KV key; `epoch` the leader's fencing epoch, stamped on every record to write."""
    views = list(views)
    masters = {v.name: writable_master(v, now, stale_after) for v in views}
    live = {state.key for state, _ in masters.values() if state is not None}
    claims = Counter(v.alias for v in views if masters[v.name][0] is not None)
    out = []
    for view in views:
        master, why = masters[view.name]
        key, current = recorded(view, records)
        if master is None:
            out.append(Decision(view, Action.SKIP, key, current=current, reason=why))
            continue
        action, reason = _action(master.key, current, claims[view.alias], live, epoch)
        if action is Action.SKIP:
            out.append(Decision(view, action, key, current=current, reason=f"{key}: {reason}"))
        elif action is Action.KEEP:
            out.append(Decision(view, action, key, record=current, current=current))
        elif current is None:
            record = _record(view.name, view.alias, master.key, epoch, now)
            out.append(Decision(view, action, key, record=record))
        else:
            record = _record(current.cluster, current.alias, master.key, epoch, now)
            out.append(Decision(view, action, key, record=record, current=current))
    return out


def _action(
    master: InstanceKey, current: MasterRecord | None, claims: int, live: set[InstanceKey], epoch: int
) -> tuple[Action, str]:
    if current is not None and current.master == master:
        return Action.KEEP, ""
    if claims > 1:
        return Action.SKIP, f"the alias is claimed by {claims} clusters with a writable master"
    if current is None:
        return Action.CREATE, ""
    if current.master in live:
        return Action.SKIP, f"names {current.master}, itself a live writable master: two masters claim it"
    if current.epoch > epoch:
        return Action.SKIP, f"holds epoch {current.epoch}, newer than {epoch}"
    return Action.REPLACE, ""


def seeds(
    views: Iterable[ClusterView],
    records: Mapping[str, MasterRecord],
    now: datetime,
    stale_after: timedelta,
    epoch: int,
) -> list[MasterRecord]:
    """The records the leader creates on its own: clusters with a unique live writable master and no
    record at all. Never a replacement."""
    return [
        d.record
        for d in decide(views, records, now, stale_after, epoch)
        if d.action is Action.CREATE and d.record is not None
    ]


def kv_pairs(records: Iterable[MasterRecord], prefix: str) -> list[dict[str, str]]:
    """orchestrator's `[{"Key", "Value"}]` of what the kvpublisher writes for `records` (a record whose
    alias cannot name a key has none)."""
    out: list[dict[str, str]] = []
    for record in records:
        try:
            pairs = cluster_master_kv_pairs(record, prefix)
        except ValueError:
            continue
        out.extend({"Key": k, "Value": v} for k, v in pairs.items())
    return out


def _record(cluster: str, alias: str, master: InstanceKey, epoch: int, now: datetime) -> MasterRecord:
    return master_record(cluster, alias, master, epoch, None).model_copy(update={"updated_at": now})
