"""Which cluster an alias or an old cluster name means, and who its live master is (pure).

After a failover the dead master keeps its last good snapshot: it has no master and no replicas any
more, so grouping by top master makes it a cluster of its own — with the alias its last probe reported.
Answering "who is the master of `ci`" from that picture names a dead host. orchestrator moves the alias
to the promoted server and renames the old cluster to the new one (`ReplaceClusterName`,
`ReplaceAliasClusterName`); Baton does the same from `baton_masters`, whose record per alias names the
master a fenced recovery (or the first sighting) published:

- the alias belongs to the cluster holding the recorded master; another cluster reporting the same alias
  keeps it only if nothing records the alias, otherwise it is known by its own name;
- a cluster with no live root (a dead old master, its place remembered) that was the recorded cluster or
  reports the alias is folded into the recorded master's cluster, so a request by the old cluster name or
  by the old master reaches the new cluster, and the dead server is listed there as the unreachable
  member it is;
- without `DetectClusterAliasQuery` a cluster's "alias" is its name, and a record made under it names
  no cluster later: it only folds the dead cluster of that name into the recorded master's cluster (a
  live old master stays a cluster of its own under its own name, as in orchestrator once re-probed);
- a cluster's master is a root of its tree that answered its latest probe in time, the recorded master
  first (and at once, while the record is newer than its latest probe). A dead server is never returned
  as the master.

Nothing here reads a clock or the network: `now` and the records come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.models import InstanceKey, MasterRecord
from libs.topology.view import ClusterView, InstanceState


def tops(view: ClusterView) -> tuple[InstanceState, ...]:
    """The instances at the top of the view: the roots, or the members of a co-master ring."""
    if view.masters:
        return view.masters
    ring: list[InstanceState] = []
    for state in view.instances:
        seen: set[InstanceKey] = set()
        current: InstanceState | None = state
        while current is not None and current.key not in seen:
            seen.add(current.key)
            master = current.master_key
            current = view.get(master) if master is not None else None
        if current is not None and current.key == state.key:
            ring.append(state)
    return tuple(ring)


def live_master(
    view: ClusterView, now: datetime, stale_after: timedelta, record: MasterRecord | None = None
) -> InstanceState | None:
    """The cluster's live master: a top instance whose latest probe succeeded within `stale_after`;
    the recorded master when it is one of them, else a writable one, else any. None when no top instance
    answers (the master is down): a dead server is never the answer to "who is the master".

    A record newer than the recorded master's latest probe wins over the tree: a recovery has just
    promoted it and the fresh snapshots are on their way, so the answer moves at the moment of
    publication, not at the next probe."""
    recorded = record.master if record is not None else None
    if record is not None and recorded is not None:
        state = view.get(recorded)
        if (
            state is not None
            and state.is_valid(now, stale_after)
            and state.last_probe.probed_at <= record.updated_at
        ):
            return state
    live = [s for s in tops(view) if s.is_valid(now, stale_after)]
    if not live:
        return None
    for state in live:
        if state.key == recorded:
            return state
    writable = [s for s in live if not s.info.read_only]
    return (writable or live)[0]


def newest_record_naming(view: ClusterView, records: Iterable[MasterRecord]) -> MasterRecord | None:
    """The newest record naming one of the cluster's members as master (under whatever key: a
    cluster with no alias is recorded under the name it had before its failovers)."""
    held = [r for r in records if r.master in view.by_key]
    return max(held, key=lambda r: (r.epoch, r.updated_at), default=None)


def has_live_top(view: ClusterView, now: datetime, stale_after: timedelta) -> bool:
    return any(s.is_valid(now, stale_after) for s in tops(view))


@dataclass(frozen=True)
class Directory:
    """The clusters as the API shows them, with orchestrator's lookups."""

    views: tuple[ClusterView, ...]
    records: Mapping[str, MasterRecord] = field(default_factory=dict)  # by alias
    renamed: Mapping[str, str] = field(default_factory=dict)  # old cluster name -> current name

    def find(self, name: str) -> ClusterView | None:
        """By alias, by cluster name (also a name the cluster had before a failover), or by any
        member instance (`host:port`, or `host` with the default port)."""
        for view in self.views:
            if view.alias == name:
                return view
        for view in self.views:
            if view.name == name:
                return view
        current = self.renamed.get(name)
        if current is not None:
            for view in self.views:
                if view.name == current:
                    return view
        try:
            key = InstanceKey.parse(name)
        except ValueError:
            return None
        return self.containing(key)

    def containing(self, key: InstanceKey) -> ClusterView | None:
        for view in self.views:
            if key in view.by_key:
                return view
        return None

    def names_of(self, view: ClusterView) -> list[str]:
        """Every name the cluster answers to: its name, its alias, the names it had before failovers."""
        names = [view.name, view.alias]
        names.extend(old for old, current in self.renamed.items() if current == view.name)
        return list(dict.fromkeys(names))

    def record_of(self, view: ClusterView) -> MasterRecord | None:
        return newest_record_naming(view, self.records.values())

    def master(self, view: ClusterView, now: datetime, stale_after: timedelta) -> InstanceState | None:
        return live_master(view, now, stale_after, self.record_of(view))


def _merge(target: ClusterView, extra: Iterable[ClusterView]) -> ClusterView:
    members = {s.key: s for s in target.instances}
    for view in extra:
        for state in view.instances:
            members.setdefault(state.key, state)
    ordered = tuple(sorted(members.values(), key=lambda s: (s.key.host, s.key.port)))
    return ClusterView(name=target.name, alias=target.alias, instances=ordered)


def _owner(views: list[ClusterView], now: datetime, stale_after: timedelta) -> ClusterView:
    """With no record, the view that keeps a shared alias: a live writable master first, then a live
    master, then the largest, then the name (stable)."""

    def rank(view: ClusterView) -> tuple[int, int, int, str]:
        master = live_master(view, now, stale_after)
        return (
            0 if master is not None and not master.info.read_only else 1,
            0 if master is not None else 1,
            -len(view.instances),
            view.name,
        )

    return min(views, key=rank)


def follow_masters(
    views: Iterable[ClusterView],
    records: Iterable[MasterRecord],
    now: datetime,
    stale_after: timedelta,
) -> Directory:
    """Apply `baton_masters` to the grouped views: see the module doc. Views no record or shared alias
    touches come back unchanged (the same objects)."""
    views = list(views)
    by_alias: dict[str, MasterRecord] = {}
    for record in records:
        held = by_alias.get(record.alias)
        if held is None or (record.epoch, record.updated_at) > (held.epoch, held.updated_at):
            by_alias[record.alias] = record

    index_of = {v.name: i for i, v in enumerate(views)}
    member_of: dict[InstanceKey, str] = {s.key: v.name for v in views for s in v.instances}
    folded: dict[str, list[ClusterView]] = {}  # target name -> views folded into it
    dropped: set[str] = set()
    realias: dict[str, str] = {}  # view name -> alias it keeps
    renamed: dict[str, str] = {}

    claimed: dict[str, str] = {}  # real alias -> owning view name
    unaliased: list[tuple[MasterRecord, str]] = []  # records of clusters known by their master's name
    for alias, record in by_alias.items():
        owner = member_of.get(record.master)
        if owner is None:
            continue
        if record.cluster != owner:
            renamed.setdefault(record.cluster, owner)
        if alias == record.cluster:
            # No DetectClusterAliasQuery: the "alias" is the name the cluster had; it names no cluster
            # now (the old master, if alive, is a cluster of its own under its own name).
            unaliased.append((record, owner))
        else:
            claimed[alias] = owner
    groups: dict[str, list[ClusterView]] = {}
    for view in views:
        if view.alias != view.name:
            groups.setdefault(view.alias, []).append(view)
    for alias, group in groups.items():
        if alias not in claimed and len(group) > 1:
            claimed[alias] = _owner(group, now, stale_after).name

    owners = set(claimed.values())
    for alias, owner in claimed.items():
        recorded = by_alias.get(alias)
        old_name = recorded.cluster if recorded is not None else None
        for view in views:
            if view.name in owners or view.name in dropped:
                continue
            if view.alias != alias and view.name != old_name:
                continue
            if not has_live_top(view, now, stale_after):
                folded.setdefault(owner, []).append(view)
                dropped.add(view.name)
                renamed.setdefault(view.name, owner)
            elif view.alias == alias:
                realias[view.name] = view.name
        owner_view = views[index_of[owner]]
        if owner_view.alias != alias:
            realias[owner] = alias
    for record, owner in unaliased:
        for view in views:
            if view.name != record.cluster or view.name in owners or view.name in dropped:
                continue
            if view.name != owner and not has_live_top(view, now, stale_after):
                folded.setdefault(owner, []).append(view)
                dropped.add(view.name)

    if not folded and not realias:
        return Directory(tuple(views), by_alias, renamed)
    out: list[ClusterView] = []
    for view in views:
        if view.name in dropped:
            continue
        if view.name in realias:
            view = view.model_copy(update={"alias": realias[view.name]})
        if view.name in folded:
            view = _merge(view, folded[view.name])
        out.append(view)
    return Directory(tuple(out), by_alias, renamed)
