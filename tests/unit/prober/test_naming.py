"""Hostname resolution decisions, discovery candidates and cluster naming (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.models import InstanceKey, InstanceSnapshot, ReplicationStatus
from libs.topology.naming import (
    IgnoreFilters,
    canonical_key,
    cluster_alias,
    discovery_candidates,
    follow,
    is_ip_literal,
    mysql_host,
    needs_dns,
    normalize_snapshot,
    resolved_host,
)
from libs.topology.view import fold, group_clusters

T = datetime(2025, 1, 1, tzinfo=UTC)


def K(text: str) -> InstanceKey:
    return InstanceKey.parse(text)


def snap(
    key: str, master: str | None = None, replicas: tuple[str, ...] = (), **kw: object
) -> InstanceSnapshot:
    rep = ReplicationStatus(master=K(master)) if master else None
    return InstanceSnapshot(
        key=K(key), probed_at=T, reachable=True, replication=rep, replicas=tuple(K(r) for r in replicas), **kw
    )


@pytest.mark.parametrize(
    ("host", "method", "expected"),
    [
        ("db1.example.com", "cname", True),
        ("db1.example.com", "CNAME", True),
        ("db1.example.com", "default", False),
        ("db1.example.com", "none", False),
        ("10.0.0.5", "cname", False),
        ("::1", "cname", False),
        ("fe80::1%eth0", "cname", False),
        ("localhost", "cname", False),
    ],
)
def test_only_cname_of_a_real_name_needs_dns(host: str, method: str, expected: bool) -> None:
    assert needs_dns(host, method) is expected


def test_ip_literals() -> None:
    assert is_ip_literal("127.0.0.1") and is_ip_literal("2001:db8::1") and not is_ip_literal("db-1")


@pytest.mark.parametrize(
    ("host", "method", "answer", "expected"),
    [
        ("db1", "default", "ignored.example.com", "db1"),
        ("db1", "none", "ignored.example.com", "db1"),
        ("db1", "cname", "db1.prod.example.com.", "db1.prod.example.com"),  # trailing dot dropped
        ("db1", "cname", None, "db1"),  # failed lookup keeps the name
        ("db1", "cname", "  ", "db1"),
        ("10.1.1.1", "cname", "whatever", "10.1.1.1"),
    ],
)
def test_resolved_host(host: str, method: str, answer: str | None, expected: str) -> None:
    assert resolved_host(host, method, answer) == expected


@pytest.mark.parametrize(
    ("method", "hostname", "report_host", "expected"),
    [
        ("@@hostname", "db-1.dc1", "10.0.0.1", "db-1.dc1"),
        ("@@report_host", "db-1.dc1", "10.0.0.1", "10.0.0.1"),
        ("@@report_host", "db-1.dc1", "", "127.0.0.1"),  # no report_host: keep the given name
        ("@@report_host", "db-1.dc1", None, "127.0.0.1"),
        ("none", "db-1.dc1", "10.0.0.1", "127.0.0.1"),
        ("@@hostname", "", "x", "127.0.0.1"),
        ("something-else", "db-1.dc1", "x", "127.0.0.1"),
    ],
)
def test_mysql_host(method: str, hostname: str | None, report_host: str | None, expected: str) -> None:
    assert mysql_host("127.0.0.1", method, hostname, report_host) == expected


def test_canonical_key_keeps_the_port_and_ignores_unreachable_snapshots() -> None:
    s = snap("10.0.0.1:3307", hostname="db-1", report_host="10.0.0.1")
    assert canonical_key(s.key, "@@hostname", s) == K("db-1:3307")
    assert canonical_key(s.key, "@@report_host", s) == s.key
    down = InstanceSnapshot.unreachable(s.key, T, "gone", code=2003)
    assert canonical_key(s.key, "@@hostname", down) == s.key


def test_follow_chains_and_never_loops() -> None:
    aliases = {K("a:1"): K("b:1"), K("b:1"): K("c:1"), K("x:1"): K("y:1"), K("y:1"): K("x:1")}
    assert follow(K("a:1"), aliases) == K("c:1")
    assert follow(K("z:1"), aliases) == K("z:1")
    assert follow(K("x:1"), aliases) in (K("x:1"), K("y:1"))


def test_normalize_snapshot_rewrites_key_master_and_replicas() -> None:
    s = snap("10.0.0.2:3306", master="10.0.0.1:3306", replicas=("10.0.0.3:3306", "db-4:3306"))
    aliases = {K("10.0.0.1:3306"): K("db-1:3306"), K("10.0.0.3:3306"): K("db-3:3306")}
    out = normalize_snapshot(s, K("db-2:3306"), aliases)
    assert out.key == K("db-2:3306")
    assert out.master_key == K("db-1:3306")
    assert out.replicas == (K("db-3:3306"), K("db-4:3306"))
    assert normalize_snapshot(s, s.key, {}) is s  # nothing to do: no copy


def test_discovery_candidates_follow_master_and_replicas_minus_self_and_ignored() -> None:
    s = snap("r1:3306", master="m:3306", replicas=("r1:3306", "r2:3306", "tmp-backup:3306"))
    assert discovery_candidates(s) == (K("m:3306"), K("r2:3306"), K("tmp-backup:3306"))
    filters = IgnoreFilters.build(any_host=["^tmp-"], master=["^m$"])
    assert discovery_candidates(s, filters) == (K("r2:3306"),)
    replica_only = IgnoreFilters.build(replica=["^m$"])  # a replica filter does not hide a master
    assert K("m:3306") in discovery_candidates(s, replica_only)
    assert discovery_candidates(InstanceSnapshot.unreachable(K("r1:3306"), T, "x")) == ()


def test_cluster_alias_prefers_the_detected_alias_then_the_config_map() -> None:
    assert cluster_alias("db-1:3306", "orders") == "orders"
    assert cluster_alias("db-1:3306", "", {"^db-2": "other", "^db-1": "main"}) == "main"
    assert cluster_alias("db-9:3306", "", {"^db-1": "main"}) == "db-9:3306"


def test_cluster_name_is_the_top_masters_address_and_alias_its_detected_alias() -> None:
    states = [
        fold(None, snap("m:3306", replicas=("i:3306",), cluster_alias="orders")),
        fold(None, snap("i:3306", master="m:3306", replicas=("r:3306",))),
        fold(None, snap("r:3306", master="i:3306")),
        fold(None, snap("other:3306")),
    ]
    views = {v.name: v for v in group_clusters(states)}
    assert set(views) == {"m:3306", "other:3306"}
    assert views["m:3306"].alias == "orders"
    assert {s.key for s in views["m:3306"].instances} == {K("m:3306"), K("i:3306"), K("r:3306")}
    assert views["other:3306"].alias == "other:3306"  # no alias: the name
