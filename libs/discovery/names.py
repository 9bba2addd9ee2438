"""Hostname resolution for the prober: the pure rules of `libs/topology/naming.py` plus the I/O they
need — a cached asynchronous DNS lookup (HostnameResolveMethod `cname` only) and the alias table.

DNS is asked only when the configuration says `cname` and the name is not an IP literal; answers are
cached (`ttl_s`, failures for a shorter time), and concurrent lookups of one name share one query.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.naming import canonical_key, follow, needs_dns, normalize_snapshot, resolved_host

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[str | None]]


async def canonical_name(host: str) -> str | None:
    """The DNS canonical name of `host` (the end of its CNAME chain), or None."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, flags=socket.AI_CANONNAME, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for info in infos:
        if info[3]:
            return info[3]
    return None


class DnsCache:
    """Cached, de-duplicated canonical-name lookups."""

    def __init__(self, lookup: Lookup = canonical_name, *, ttl_s: float = 300.0, failure_ttl_s: float = 10.0):
        self.lookup = lookup
        self.ttl_s = ttl_s
        self.failure_ttl_s = failure_ttl_s
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self.lookups = 0

    def cached(self, host: str) -> tuple[bool, str | None]:
        """(hit, answer) without any I/O."""
        hit = self._cache.get(host)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    async def canonical(self, host: str) -> str | None:
        found, answer = self.cached(host)
        if found:
            return answer
        pending = self._inflight.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[host] = fut
        try:
            self.lookups += 1
            answer = await self.lookup(host)
            ttl = self.ttl_s if answer else self.failure_ttl_s
            self._cache[host] = (time.monotonic() + ttl, answer)
            fut.set_result(answer)
            return answer
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: the waiters (if any) got it
            raise
        finally:
            del self._inflight[host]


class Names:
    """Resolves given names (seeds, discovered masters/replicas) and normalizes snapshots.

    `aliases` returns the registry's alias table (alias -> canonical key); renames this worker found
    itself are used at once, before the registry catches up. `on_rename(old, new)` is called once per
    instance whose canonical name differs from the one it was registered under.
    """

    def __init__(
        self,
        hostname_method: str,
        mysql_hostname_method: str,
        *,
        aliases: Callable[[], Mapping[InstanceKey, InstanceKey]] = dict,
        dns: DnsCache | None = None,
        on_rename: Callable[[InstanceKey, InstanceKey], None] | None = None,
    ) -> None:
        self.hostname_method = hostname_method
        self.mysql_hostname_method = mysql_hostname_method
        self.aliases = aliases
        self.dns = dns or DnsCache()
        self.on_rename = on_rename
        self.renamed: dict[InstanceKey, InstanceKey] = {}

    def _table(self) -> Mapping[InstanceKey, InstanceKey]:
        shared = self.aliases()
        return {**shared, **self.renamed} if self.renamed else shared

    def resolve_cached(self, key: InstanceKey) -> InstanceKey | None:
        """`key` under HostnameResolveMethod and the alias table, if known without I/O."""
        host = key.host
        if needs_dns(host, self.hostname_method):
            found, answer = self.dns.cached(host)
            if not found:
                return None
            host = resolved_host(host, self.hostname_method, answer)
        resolved = key if host == key.host else InstanceKey(host=host, port=key.port)
        return follow(resolved, self._table())

    async def resolve(self, key: InstanceKey) -> InstanceKey:
        """`key` under HostnameResolveMethod (DNS if `cname`) and the alias table."""
        cached = self.resolve_cached(key)
        if cached is not None:
            return cached
        answer = await self.dns.canonical(key.host)
        host = resolved_host(key.host, self.hostname_method, answer)
        resolved = key if host == key.host else InstanceKey(host=host, port=key.port)
        return follow(resolved, self._table())

    def normalize(self, key: InstanceKey, snapshot: InstanceSnapshot) -> InstanceSnapshot:
        """`snapshot` (a probe of `key`) with canonical names; reports a rename the first time."""
        table = self._table()
        if snapshot.reachable:
            canon = canonical_key(key, self.mysql_hostname_method, snapshot)
            if canon != key and self.renamed.get(key) != canon:
                self.renamed[key] = canon
                log.info(
                    "instance %s is known as %s (MySQLHostnameResolveMethod %s)",
                    key,
                    canon,
                    self.mysql_hostname_method,
                )
                if self.on_rename is not None:
                    self.on_rename(key, canon)
                table = self._table()
        else:
            canon = follow(key, table)
        return normalize_snapshot(snapshot, canon, table)
