"""How instances are named: pure decisions about hostnames, discovery candidates and cluster aliases.

orchestrator names an instance by the host it was *told* about, resolved one of two ways, and Baton
keeps both knobs with their meaning:

- `HostnameResolveMethod` applies to a name Baton is given (a seed, a replica's `Master_Host`, a row of
  `SHOW SLAVE HOSTS`): `none` and `default` keep it as written, `cname` replaces it by its DNS canonical
  name (the lookup itself is I/O and lives in the prober; here we only say *whether* one is needed).
- `MySQLHostnameResolveMethod` applies after a successful probe: the instance is known by its
  `@@hostname` (the default), its `@@report_host`, or (`none`) by the name it was reached at. When that
  name differs from the address probed, the address becomes an *alias* of the canonical key, and every
  snapshot is published with canonical names (its own key, its master and its replicas), so that the
  name a replica gives its master and the name the master is registered under always agree.

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from libs.models import InstanceKey, InstanceSnapshot

HOSTNAME_METHODS = ("none", "default", "cname")
MYSQL_HOSTNAME_METHODS = ("none", "@@hostname", "@@report_host")


def is_ip_literal(host: str) -> bool:
    """True for `10.0.0.5`, `::1`, `fe80::1%eth0`: names that DNS can tell nothing more about."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def needs_dns(host: str, method: str) -> bool:
    """Whether resolving `host` under HostnameResolveMethod `method` needs a DNS lookup.

    Only `cname` ever does, and never for an IP literal or `localhost`."""
    return method.lower() == "cname" and bool(host) and not is_ip_literal(host) and host != "localhost"


def resolved_host(host: str, method: str, canonical: str | None = None) -> str:
    """The name to use for a given `host` under HostnameResolveMethod `method`.

    `canonical` is the DNS answer when `needs_dns` said a lookup was needed (None: lookup failed or was
    not made). A failed lookup keeps the name as given, as orchestrator does."""
    if not needs_dns(host, method):
        return host
    answer = (canonical or "").strip().rstrip(".")
    return answer or host


def mysql_host(given: str, method: str, hostname: str | None, report_host: str | None) -> str:
    """The host an instance is known by after a successful probe (MySQLHostnameResolveMethod).

    `@@hostname` / `@@report_host` pick that server variable; `none` (or an unknown method, or an empty
    variable) keeps the host it was reached at. An empty `@@report_host` is common (replicas that set
    none): the instance then simply keeps its given name rather than failing its probe."""
    pick = {"@@hostname": hostname, "hostname": hostname, "default": hostname}
    pick |= {"@@report_host": report_host, "report_host": report_host}
    chosen = pick.get(method.lower(), None)
    chosen = (chosen or "").strip()
    return chosen or given


def canonical_key(key: InstanceKey, method: str, snapshot: InstanceSnapshot) -> InstanceKey:
    """The key `snapshot`'s instance should be registered under. Unreachable snapshots keep `key`."""
    if not snapshot.reachable:
        return key
    host = mysql_host(key.host, method, snapshot.hostname, snapshot.report_host)
    return key if host == key.host else InstanceKey(host=host, port=key.port)


def follow(key: InstanceKey, aliases: Mapping[InstanceKey, InstanceKey]) -> InstanceKey:
    """Map a key through the alias table (alias -> canonical), following chains, never looping."""
    seen = {key}
    while key in aliases:
        key = aliases[key]
        if key in seen:
            break
        seen.add(key)
    return key


def normalize_snapshot(
    snapshot: InstanceSnapshot, key: InstanceKey, aliases: Mapping[InstanceKey, InstanceKey]
) -> InstanceSnapshot:
    """`snapshot` with canonical names: its key set to `key`, its master and replicas mapped through
    `aliases`. Returns the same object when nothing changes (the common case costs no copy)."""
    update: dict[str, object] = {}
    if snapshot.key != key:
        update["key"] = key
    rep = snapshot.replication
    if rep is not None and rep.master is not None:
        master = follow(rep.master, aliases)
        if master != rep.master:
            update["replication"] = rep.model_copy(update={"master": master})
    if snapshot.replicas and aliases:
        replicas = tuple(sorted({follow(r, aliases) for r in snapshot.replicas}))
        if replicas != snapshot.replicas:
            update["replicas"] = replicas
    return snapshot.model_copy(update=update) if update else snapshot


@dataclass(frozen=True)
class IgnoreFilters:
    """orchestrator's DiscoveryIgnore*HostnameFilters: regexes searched in a hostname."""

    any_host: tuple[str, ...] = ()  # DiscoveryIgnoreHostnameFilters
    replica: tuple[str, ...] = ()  # DiscoveryIgnoreReplicaHostnameFilters
    master: tuple[str, ...] = ()  # DiscoveryIgnoreMasterHostnameFilters
    _compiled: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, any_host: Sequence[str] = (), replica: Sequence[str] = (), master: Sequence[str] = ()
    ) -> IgnoreFilters:
        return cls(tuple(any_host), tuple(replica), tuple(master))

    def _patterns(self, role: str) -> tuple[re.Pattern[str], ...]:
        if role not in self._compiled:
            extra = self.replica if role == "replica" else self.master if role == "master" else ()
            self._compiled[role] = tuple(re.compile(p) for p in (*self.any_host, *extra))
        return self._compiled[role]

    def ignores(self, host: str, role: str) -> bool:
        """True when `host`, found as a `role` ("master" or "replica"), must not be discovered."""
        return any(p.search(host) for p in self._patterns(role))


NO_FILTERS = IgnoreFilters()


def discovery_candidates(
    snapshot: InstanceSnapshot, filters: IgnoreFilters = NO_FILTERS
) -> tuple[InstanceKey, ...]:
    """The instances a successful probe points at: its master (upward) and its replicas (downward),
    minus itself and those the ignore filters exclude. Names must already be canonical."""
    if not snapshot.reachable:
        return ()
    found: list[InstanceKey] = []
    master = snapshot.master_key
    if master is not None and master != snapshot.key and not filters.ignores(master.host, "master"):
        found.append(master)
    for replica in snapshot.replicas:
        if replica != snapshot.key and replica not in found and not filters.ignores(replica.host, "replica"):
            found.append(replica)
    return tuple(found)


def cluster_alias(name: str, detected: str, name_to_alias: Mapping[str, str] | None = None) -> str:
    """A cluster's alias: `DetectClusterAliasQuery`'s answer on its master, else the first
    `ClusterNameToAlias` regex matching the cluster name (in the config's order), else the name."""
    if detected.strip():
        return detected.strip()
    for pattern, alias in (name_to_alias or {}).items():
        if re.search(pattern, name):
            return alias
    return name


def known_names(keys: Iterable[InstanceKey], aliases: Mapping[InstanceKey, InstanceKey]) -> set[InstanceKey]:
    """Every name under which an instance is already known: registered keys and their aliases."""
    return set(keys) | set(aliases)
