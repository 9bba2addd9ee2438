"""DataCenterPattern / RegionPattern / PhysicalEnvironmentPattern: orchestrator's semantics (the first
capture group of the regex searched in the hostname; a Detect...Query answer overrides), and the chain
hostname -> data center -> PreventCrossDataCenterMasterFailover."""

from __future__ import annotations

import pytest

from libs.topology.candidate import choose_candidate
from libs.topology.placement import from_hostname, placement
from libs.topology.plan import CandidateRules
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r

DC = r"^[a-z0-9]+\.([a-z]+[0-9]+)\."
REGION = r"\.(eu|us)-"


@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        (DC, "db7.ams1.example.com", "ams1"),
        (DC, "db7.example.com", ""),  # no match: nothing
        (r"-(dc\d)$", "mysql-12-dc3", "dc3"),
        (r"dc\d", "mysql-dc3", ""),  # no capture group: nothing (orchestrator takes match[1])
        (r"(?:db)(\d+)|(ams)", "ams-x", ""),  # the first group took no part: nothing
        (REGION, "db1.eu-west.example", "eu"),
        ("", "db7.ams1.example.com", ""),  # unset
        (None, "db7.ams1.example.com", ""),
        (r"^(\d+)\.", "127.0.0.1", "127"),  # an address is a hostname like any other
    ],
)
def test_from_hostname(pattern: str | None, hostname: str, expected: str) -> None:
    assert from_hostname(pattern, hostname) == expected


def test_a_detect_query_answer_overrides_the_pattern_and_an_empty_one_does_not() -> None:
    host = "db7.ams1.eu-west.example"
    assert placement(host, data_center_pattern=DC, region_pattern=REGION) == {
        "data_center": "ams1",
        "region": "eu",
    }
    assert placement(host, data_center_pattern=DC, detected={"data_center": "fra2"}) == {
        "data_center": "fra2"
    }
    assert placement(host, data_center_pattern=DC, detected={"data_center": ""}) == {"data_center": "ams1"}
    assert placement(host, physical_environment_pattern=r"\.(prod|test)\.", detected={}) == {}
    assert placement("db1.prod.x", physical_environment_pattern=r"\.(prod|test)\.") == {
        "physical_environment": "prod"
    }


def test_patterns_feed_prevent_cross_data_center_master_failover() -> None:
    """Hostnames carrying the DC: with the pattern, the only replica (in another DC) is refused; without
    it every data center is empty and the guard would pass (the bug of issue 17)."""
    names = {"master": "db1.ams1.example", 7: "db7.fra2.example"}
    dcs = {n: from_hostname(DC, h) for n, h in names.items()}
    rules = CandidateRules(prevent_cross_data_center_master_failover=True)
    view = cluster(r(7, dc=dcs[7]), failed=master(dc=dcs["master"]))
    plan = choose_candidate(view, MASTER, rules, NOW)
    assert not plan.ok and plan.successor is None
    assert "PreventCrossDataCenterMasterFailover" in {p.key: p.reason for p in plan.passed_over}[k(7)]
    blind = cluster(r(7, dc=""), failed=master(dc=""))
    assert choose_candidate(blind, MASTER, rules, NOW).successor == k(7)
    same = cluster(r(7, dc=from_hostname(DC, "db7.ams1.example")), failed=master(dc=dcs["master"]))
    assert choose_candidate(same, MASTER, rules, NOW).successor == k(7)
