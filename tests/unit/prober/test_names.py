"""The prober's name resolver: DNS cache (with a fake lookup: no DNS traffic in tests) and renames."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from libs.discovery.names import DnsCache, Names
from libs.models import InstanceKey, InstanceSnapshot, ReplicationStatus

T = datetime(2025, 1, 1, tzinfo=UTC)


def K(text: str) -> InstanceKey:
    return InstanceKey.parse(text)


async def test_dns_cache_dedupes_concurrent_lookups_and_caches_answers() -> None:
    calls: list[str] = []

    async def lookup(host: str) -> str | None:
        calls.append(host)
        await asyncio.sleep(0.01)
        return {"db1": "db1.prod.example.com"}.get(host)

    cache = DnsCache(lookup, ttl_s=60, failure_ttl_s=0)
    answers = await asyncio.gather(*(cache.canonical("db1") for _ in range(5)))
    assert answers == ["db1.prod.example.com"] * 5 and calls == ["db1"]
    assert await cache.canonical("db1") == "db1.prod.example.com" and calls == ["db1"]
    assert await cache.canonical("nope") is None
    assert await cache.canonical("nope") is None
    assert calls.count("nope") == 2  # failures are cached for failure_ttl_s only (0 here)


async def test_resolve_uses_dns_only_for_cname() -> None:
    async def lookup(host: str) -> str | None:
        return "db1.prod.example.com"

    dns = DnsCache(lookup)
    assert await Names("default", "@@hostname", dns=dns).resolve(K("db1:3306")) == K("db1:3306")
    assert dns.lookups == 0
    names = Names("cname", "@@hostname", dns=dns)
    assert names.resolve_cached(K("db1:3306")) is None  # not cached yet: needs I/O
    assert await names.resolve(K("db1:3306")) == K("db1.prod.example.com:3306")
    assert names.resolve_cached(K("db1:3306")) == K("db1.prod.example.com:3306")
    assert await names.resolve(K("10.0.0.1:3306")) == K("10.0.0.1:3306") and dns.lookups == 1


async def test_normalize_reports_a_rename_once_and_maps_unreachable_probes_too() -> None:
    renames: list[tuple[InstanceKey, InstanceKey]] = []
    names = Names("default", "@@hostname", on_rename=lambda a, b: renames.append((a, b)))
    probed = K("127.0.0.1:3307")
    good = InstanceSnapshot(
        key=probed,
        probed_at=T,
        reachable=True,
        hostname="db-2",
        replication=ReplicationStatus(master=K("127.0.0.1:3306")),
    )
    out = names.normalize(probed, good)
    assert out.key == K("db-2:3307") and renames == [(probed, K("db-2:3307"))]
    names.normalize(probed, good)
    assert len(renames) == 1
    down = names.normalize(probed, InstanceSnapshot.unreachable(probed, T, "gone", code=2003))
    assert down.key == K("db-2:3307")
