"""orchestrator's key layout plus Baton's epoch key, as a pure function of a MasterRecord."""

from __future__ import annotations

import pytest

from libs.kv.layout import (
    DEFAULT_PREFIX,
    cluster_master_key,
    cluster_master_kv_pairs,
    epoch_key,
    normalize_prefix,
)
from libs.models.events import MasterRecord
from libs.models.instance import InstanceKey


def record(host: str, port: int = 3306, *, alias: str = "shop", **kw: str) -> MasterRecord:
    return MasterRecord(
        cluster=f"{host}:{port}", alias=alias, master=InstanceKey(host=host, port=port), epoch=7, **kw
    )


def test_hostname_master_writes_orchestrators_five_keys_then_the_epoch() -> None:
    pairs = cluster_master_kv_pairs(record("db-2.dc1.example.com", 3307, ipv4="10.0.0.2"))
    assert list(pairs.items()) == [
        ("mysql/master/shop", "db-2.dc1.example.com:3307"),
        ("mysql/master/shop/hostname", "db-2.dc1.example.com"),
        ("mysql/master/shop/port", "3307"),
        ("mysql/master/shop/ipv4", "10.0.0.2"),
        ("mysql/master/shop/ipv6", ""),
        ("mysql/master/shop/baton-epoch", "7"),
    ]


def test_ipv4_literal_fills_ipv4_without_dns() -> None:
    pairs = cluster_master_kv_pairs(record("10.1.2.3"))
    assert pairs["mysql/master/shop"] == "10.1.2.3:3306"
    assert pairs["mysql/master/shop/ipv4"] == "10.1.2.3"
    assert pairs["mysql/master/shop/ipv6"] == ""


def test_ipv6_literal_is_written_like_orchestrator_without_brackets() -> None:
    pairs = cluster_master_kv_pairs(record("fd00::2", 3306))
    assert pairs["mysql/master/shop"] == "fd00::2:3306"  # InstanceKey.StringCode: host:port, no brackets
    assert pairs["mysql/master/shop/hostname"] == "fd00::2"
    assert pairs["mysql/master/shop/ipv4"] == ""
    assert pairs["mysql/master/shop/ipv6"] == "fd00::2"


def test_unresolved_hostname_still_writes_empty_ip_keys() -> None:
    # A missing sub-key would keep the previous master's address: always write all five.
    pairs = cluster_master_kv_pairs(record("db-9"))
    assert pairs["mysql/master/shop/ipv4"] == "" and pairs["mysql/master/shop/ipv6"] == ""


def test_record_addresses_override_the_literal() -> None:
    pairs = cluster_master_kv_pairs(
        record("db-9", hostname="db-9.example.com", ipv4="10.9.9.9", ipv6="fd00::9")
    )
    assert pairs["mysql/master/shop/hostname"] == "db-9.example.com"
    assert (pairs["mysql/master/shop/ipv4"], pairs["mysql/master/shop/ipv6"]) == ("10.9.9.9", "fd00::9")


def test_alias_names_the_keys_not_the_cluster_name() -> None:
    pairs = cluster_master_kv_pairs(record("db-1", alias="orders"))
    assert "mysql/master/orders" in pairs
    assert not any("db-1:3306" in key for key in pairs)


def test_empty_alias_falls_back_to_the_cluster_name() -> None:
    pairs = cluster_master_kv_pairs(record("db-1", alias=""))
    assert pairs["mysql/master/db-1:3306"] == "db-1:3306"
    assert "mysql/master/db-1:3306/baton-epoch" in pairs


def test_alias_with_a_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="alias"):
        cluster_master_kv_pairs(record("db-1", alias="a/port"))


@pytest.mark.parametrize(
    ("prefix", "normal"),
    [("mysql/master", "mysql/master/"), ("mysql/master/", "mysql/master/"), ("/x", "x/"), ("", "")],
)
def test_prefix_is_normalised_like_orchestrator(prefix: str, normal: str) -> None:
    assert normalize_prefix(prefix) == normal
    assert cluster_master_key(prefix, "shop") == f"{normal}shop"
    assert epoch_key(prefix, "shop") == f"{normal}shop/baton-epoch"


def test_default_prefix_and_custom_prefix() -> None:
    assert DEFAULT_PREFIX == "mysql/master"
    assert "db/masters/shop/port" in cluster_master_kv_pairs(record("db-1"), "db/masters")
