"""Semi-sync repair: which replicas get `rpl_semi_sync_slave_enabled` switched on or off. Pure.

orchestrator (go/inst/instance_topology.go `AnalyzeSemiSyncReplicaTopology`, go/logic/topology_recovery.go
`recoverSemiSyncReplicas`): a LockedSemiSyncMaster (and, with `EnforceExactSemiSyncReplicas`, a
MasterWithTooManySemiSyncReplicas) is repaired by changing the replica side of semi-sync on the
master's direct replicas:

- the replicas are classified: *excluded* (latest check not valid, or not replicating: IO or SQL
  thread stopped), *asynchronous* (semi-sync priority 0), *possible semi-sync replicas* (priority > 0);
- the possible ones are ordered by priority (higher first), then promotion rule (must, prefer,
  neutral, prefer_not, must_not), then `host:port`;
- **enough** (`RecoverLockedSemiSyncMaster`): walking that order, every replica not enabled yet is
  enabled until `wait_count - clients` have been; nothing is ever disabled;
- **exact** (`EnforceExactSemiSyncReplicas`, which wins over the other key): the first `wait_count`
  possible replicas must be enabled, every other one (and every asynchronous one) disabled;
- no action at all is a failed recovery ("cannot determine actions").

The priority is what `DetectSemiSyncEnforcedQuery` answers on the replica (`semi_sync_priority` in its
snapshot). **Change:** without that query orchestrator gives every replica priority 0 and can never
repair anything; Baton then gives every replica priority 1 except `must_not` ones (0: never an ack from
a replica that may never be promoted, orchestrator's legacy rule). **Change:** a replica whose setting
is on but whose semi-sync status is off (the setting was changed without restarting its IO thread, so it
does not acknowledge) counts as *not* enabled: enabling it again restarts its IO thread.

MariaDB has no `rpl_semi_sync_master_wait_for_slave_count`: a MariaDB master waits for one
acknowledgement, so the wait count is 1 there and the plan says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from libs.models import Flavor, InstanceKey, PromotionRule
from libs.topology.analysis import Finding
from libs.topology.candidate import RULE_RANK  # must, prefer, neutral, prefer_not, must_not
from libs.topology.codes import Analysis
from libs.topology.view import ClusterView

MARIADB_ONE_ACK = (
    "MariaDB has no rpl_semi_sync_master_wait_for_slave_count: its master waits for one ack, "
    "so one semi-sync replica is enough"
)


@dataclass(frozen=True)
class SemiSyncMaster:
    """The master's side: what it waits for and how many semi-sync replicas it has now."""

    key: InstanceKey
    wait_count: int  # rpl_semi_sync_master_wait_for_slave_count (MariaDB: always 1)
    clients: int  # Rpl_semi_sync_master_clients
    mariadb: bool = False


@dataclass(frozen=True)
class SemiSyncReplica:
    """One direct replica of the master, as the decision sees it."""

    key: InstanceKey
    enabled: bool  # rpl_semi_sync_slave_enabled
    acking: bool = True  # Rpl_semi_sync_slave_status: the setting is in effect (IO thread restarted)
    valid: bool = True  # its latest probe succeeded and is recent
    replicating: bool = True  # IO and SQL threads running
    priority: int = 1  # DetectSemiSyncEnforcedQuery; 0 = always asynchronous
    rule: PromotionRule = PromotionRule.NEUTRAL

    @property
    def effective(self) -> bool:
        """Enabled and in effect: it acknowledges (or will, once it has something to acknowledge)."""
        return self.enabled and self.acking


@dataclass(frozen=True)
class SemiSyncPlan:
    """What to do: `enable` (in priority order) before `disable`, as orchestrator (enabling first never
    leaves the master with fewer semi-sync replicas than before). `refusal`: why nothing can be done."""

    master: InstanceKey
    exact: bool
    wait_count: int
    clients: int
    enable: tuple[InstanceKey, ...] = ()
    disable: tuple[InstanceKey, ...] = ()
    candidates: tuple[InstanceKey, ...] = ()  # possible semi-sync replicas, in priority order
    asynchronous: tuple[InstanceKey, ...] = ()  # priority 0
    excluded: tuple[tuple[InstanceKey, str], ...] = ()  # (replica, why)
    notes: tuple[str, ...] = field(default=())
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None

    def summary(self) -> str:
        mode = "exact" if self.exact else "enough"
        head = f"semi-sync ({mode}) on {self.master}: waits for {self.wait_count}, {self.clients} client(s)"
        parts = [head]
        if self.refusal is not None:
            parts.append(self.refusal)
        if self.enable:
            parts.append("enable " + ", ".join(str(k) for k in self.enable))
        if self.disable:
            parts.append("disable " + ", ".join(str(k) for k in self.disable))
        if self.excluded:
            parts.append("excluded " + ", ".join(f"{k} ({why})" for k, why in self.excluded))
        parts.extend(self.notes)
        return "; ".join(parts)


def priority_order(replicas: Sequence[SemiSyncReplica]) -> list[SemiSyncReplica]:
    """orchestrator's order: priority (higher first), promotion rule (better first), host:port."""
    return sorted(replicas, key=lambda r: (-r.priority, RULE_RANK[r.rule], str(r.key)))


def semi_sync_plan(
    master: SemiSyncMaster, replicas: Sequence[SemiSyncReplica], *, exact: bool
) -> SemiSyncPlan:
    """Which replicas to enable / disable (see the module docstring)."""
    excluded: list[tuple[InstanceKey, str]] = []
    asynchronous: list[SemiSyncReplica] = []
    possible: list[SemiSyncReplica] = []
    for replica in replicas:
        if not replica.valid:
            excluded.append((replica.key, "last check not valid"))
        elif not replica.replicating:
            excluded.append((replica.key, "not replicating"))
        elif replica.priority <= 0:
            asynchronous.append(replica)
        else:
            possible.append(replica)
    ordered = priority_order(possible)
    wait = 1 if master.mariadb else master.wait_count
    enable: list[InstanceKey] = []
    disable: list[InstanceKey] = []
    if exact:
        for i, replica in enumerate(ordered):
            wanted = i < wait
            if wanted and not replica.effective:
                enable.append(replica.key)
            elif not wanted and replica.enabled:
                disable.append(replica.key)
        disable.extend(r.key for r in sorted(asynchronous, key=lambda r: str(r.key)) if r.enabled)
    else:
        need = wait - master.clients
        for replica in ordered:
            if len(enable) >= need:
                break
            if not replica.effective:
                enable.append(replica.key)
    notes: list[str] = []
    if master.mariadb:
        notes.append(MARIADB_ONE_ACK)
    if not exact and 0 < len(enable) < wait - master.clients:
        notes.append(f"only {len(enable)} of the {wait - master.clients} missing semi-sync replica(s) found")
    refusal = None
    if not enable and not disable:
        refusal = (
            "cannot determine actions based on possible semi-sync replicas: "
            f"{len(ordered)} possible, {len(asynchronous)} asynchronous, {len(excluded)} excluded"
        )
    return SemiSyncPlan(
        master=master.key,
        exact=exact,
        wait_count=wait,
        clients=master.clients,
        enable=tuple(enable),
        disable=tuple(disable),
        candidates=tuple(r.key for r in ordered),
        asynchronous=tuple(r.key for r in asynchronous),
        excluded=tuple(excluded),
        notes=tuple(notes),
        refusal=refusal,
    )


def semi_sync_view_plan(
    view: ClusterView,
    master: InstanceKey,
    now: datetime,
    stale_after: timedelta,
    *,
    exact: bool,
    priorities: Mapping[InstanceKey, int] | None = None,
) -> SemiSyncPlan:
    """`semi_sync_plan` for `master` of `view`: its semi-sync state and its direct replicas'.
    `priorities` overrides what the snapshots say (tests); a snapshot without a priority (no
    DetectSemiSyncEnforcedQuery) gives 1, or 0 for a `must_not` replica."""
    state = view.get(master)
    if state is None:
        return SemiSyncPlan(
            master=master, exact=exact, wait_count=0, clients=0, refusal=f"{master} is unknown"
        )
    info = state.info
    semi = info.semi_sync
    side = SemiSyncMaster(
        key=master,
        wait_count=semi.master_wait_for_replica_count,
        clients=semi.master_clients,
        mariadb=info.flavor is Flavor.MARIADB,
    )
    replicas: list[SemiSyncReplica] = []
    for replica in view.replicas_of(master):
        snap = replica.info
        priority = (priorities or {}).get(replica.key, snap.semi_sync_priority)
        if priority is None:
            priority = 0 if snap.promotion_rule is PromotionRule.MUST_NOT else 1
        replicas.append(
            SemiSyncReplica(
                key=replica.key,
                enabled=snap.semi_sync.replica_enabled,
                acking=snap.semi_sync.replica_status,
                valid=replica.is_valid(now, stale_after),
                replicating=snap.replication is not None and snap.replication.replicating,
                priority=priority,
                rule=snap.promotion_rule,
            )
        )
    return semi_sync_plan(side, replicas, exact=exact)


# The codes of a semi-sync master short of (or over) its semi-sync replicas: the repair's re-check
# proceeds on any of them (a Hypothesis too: the plan rests on the fresh clients and wait count, not on
# how long the binlog coordinates have been stale).
SEMI_SYNC_RECHECK_CODES = frozenset(
    {
        Analysis.LOCKED_SEMI_SYNC_MASTER,
        Analysis.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS,
        Analysis.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS,
    }
)


def semi_sync_recheck(findings: Iterable[Finding], master: InstanceKey) -> Finding | None:
    """The fresh finding of `master` the repair proceeds on, or None: already fixed."""
    return next((f for f in findings if f.instance == master and f.code in SEMI_SYNC_RECHECK_CODES), None)


def semi_sync_verified(after: SemiSyncPlan) -> str | None:
    """On a fresh look after the actions (`after`: the plan made again): None when the master has as
    many semi-sync clients as it waits for and nothing is left to do, else why not."""
    if after.clients < after.wait_count:
        return f"{after.master} has {after.clients} semi-sync client(s), waits for {after.wait_count}"
    if after.enable or after.disable:
        left = [f"enable {k}" for k in after.enable] + [f"disable {k}" for k in after.disable]
        return "still to do: " + ", ".join(left)
    return None


def successor_semi_sync_replicas(
    view: ClusterView,
    failed: InstanceKey,
    successor: InstanceKey | None,
    repointed: Sequence[InstanceKey],
) -> tuple[InstanceKey, ...]:
    """After a failover of a semi-sync master: which of the `repointed` replicas get the replica side
    switched on, so that `successor` has as many semi-sync replicas as `failed` waited for (it may have
    been the only one, and then the new master would wait for an ack nobody sends). The replicas keep
    their own setting otherwise; the missing ones are taken in orchestrator's order (`priority_order`),
    from those last seen replicating; none when enough of them are on already."""
    state = view.get(failed)
    if state is None or successor is None:
        return ()
    info = state.info
    master = SemiSyncMaster(
        key=successor,
        wait_count=info.semi_sync.master_wait_for_replica_count,
        clients=0,
        mariadb=info.flavor is Flavor.MARIADB,
    )
    replicas: list[SemiSyncReplica] = []
    for key in repointed:
        replica = view.get(key)
        if replica is None or key == successor:
            continue
        snap = replica.info
        priority = snap.semi_sync_priority
        if priority is None:
            priority = 0 if snap.promotion_rule is PromotionRule.MUST_NOT else 1
        replicas.append(
            SemiSyncReplica(
                key=key,
                enabled=snap.semi_sync.replica_enabled,
                acking=True,  # a repointed replica reconnects: an enabled one acknowledges the successor
                valid=replica.last_probe.reachable,
                replicating=True,  # it is being repointed: its threads are started under the successor
                priority=priority,
                rule=snap.promotion_rule,
            )
        )
    already = sum(1 for r in replicas if r.enabled and r.valid and r.priority > 0)
    plan = semi_sync_plan(replace(master, clients=already), replicas, exact=False)
    return plan.enable
